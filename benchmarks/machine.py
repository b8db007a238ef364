"""What machine a benchmark ran on, for its report."""
import platform


def cpuinfo_field(name):
    """The first value of `name` in Linux's /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name():
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform says."""
    return cpuinfo_field("model name") or platform.processor() or "unknown CPU"
