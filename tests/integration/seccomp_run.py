#!/usr/bin/env python3
"""seccomp_run.py UNIT [--deny NAME]... -- COMMAND...: runs COMMAND under the system-call filter
that UNIT's SystemCallFilter=, SystemCallErrorNumber= and SystemCallArchitectures=native lines
describe, the way systemd installs it (test_package.sh: systemd is not PID 1 on the test machine,
so systemd-run cannot start the unit). Groups (@system-service, ...) are expanded with
`systemd-analyze syscall-filter`, names mapped to x86_64 numbers with the kernel's
asm/unistd_64.h; allow lists are joined, `~` lists then removed, and the calls systemd always
permits added. A call outside the filter fails with SystemCallErrorNumber (or kills the process
when none is set); a foreign architecture or an x32 call kills. --deny removes more names (to
show that the filter bites)."""
import ctypes
import errno
import os
import platform
import re
import struct
import subprocess
import sys

UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_RET_K = 0x06
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# systemd.exec(5), SystemCallFilter=: always permitted, whatever the list says.
ALWAYS = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
          "clock_gettime", "gettimeofday", "time", "nanosleep", "clock_nanosleep"]


def expand(name, seen):
    """expand returns the system-call names of `name` (a group is expanded recursively)."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if w and not w.startswith("#"):
            names |= expand(w, seen)
    return names


def unit_filter(path):
    allow, deny, err = set(), set(), None
    arch_native = False
    for line in open(path):
        line = line.strip()
        if line.startswith("SystemCallFilter="):
            v = line.split("=", 1)[1].strip()
            neg = v.startswith("~")
            for w in v.lstrip("~").split():
                (deny if neg else allow).update(expand(w, set()))
        elif line.startswith("SystemCallErrorNumber="):
            err = getattr(errno, line.split("=", 1)[1].strip())
        elif line == "SystemCallArchitectures=native":
            arch_native = True
    if not allow:
        sys.exit("seccomp_run: %s has no SystemCallFilter allow list" % path)
    return (allow - deny) | set(ALWAYS), err, arch_native


def numbers():
    nr = {}
    for line in open(UNISTD):
        m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
        if m:
            nr[m.group(1)] = int(m.group(2))
    return nr


def program(allowed_nrs, err):
    ins = []
    def add(code, jt, jf, k):
        ins.append(struct.pack("HBBI", code, jt, jf, k))
    add(BPF_LD_W_ABS, 0, 0, 4)                           # seccomp_data.arch
    add(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64)
    add(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)
    add(BPF_LD_W_ABS, 0, 0, 0)                           # seccomp_data.nr
    add(BPF_JGE_K, 0, 1, X32_BIT)
    add(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)
    for n in sorted(allowed_nrs):
        add(BPF_JEQ_K, 0, 1, n)
        add(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    add(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS if err is None else SECCOMP_RET_ERRNO | err)
    return b"".join(ins), len(ins)


def main():
    args = sys.argv[1:]
    if "--" not in args or len(args) < 3:
        sys.exit("usage: seccomp_run.py UNIT [--deny NAME]... -- COMMAND...")
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1:]
    unit, extra_deny = opts[0], set()
    i = 1
    while i < len(opts):
        if opts[i] == "--deny" and i + 1 < len(opts):
            extra_deny.add(opts[i + 1])
            i += 2
        else:
            sys.exit("seccomp_run: unknown option %s" % opts[i])
    if platform.machine() != "x86_64":
        sys.exit("seccomp_run: x86_64 only")
    names, err, arch_native = unit_filter(unit)
    if not arch_native:
        sys.exit("seccomp_run: %s lacks SystemCallArchitectures=native" % unit)
    names -= extra_deny
    nr = numbers()
    allowed = {nr[n] for n in names if n in nr}  # 32-bit-only names have no x86_64 number
    code, count = program(allowed, err)
    buf = ctypes.create_string_buffer(code, len(code))
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Fprog(count, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit("seccomp_run: PR_SET_NO_NEW_PRIVS: %s" % os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        sys.exit("seccomp_run: PR_SET_SECCOMP: %s" % os.strerror(ctypes.get_errno()))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
