"""airspeed velocity benchmarks for cyrnn (see ../asv.conf.json)."""
