"""What machine a benchmark ran on, and what code, for its report."""
import platform
import subprocess


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


def source_revision(path):
    """The git commit of the checkout whose tracked files `path` holds (and
    whether the checkout's tracked files differ from it: csrc/ builds into
    the package too), or None where they are not tracked (an installed copy,
    even in a virtual environment inside a checkout) or without git: a
    report names the code it measured."""
    def git(*args):
        return subprocess.run(["git", "-C", path, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        if not git("ls-files", "--", "."):
            return None
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"commit {commit}" + (", with uncommitted changes" if changed else "")
