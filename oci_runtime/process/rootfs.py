"""The container's root filesystem, prepared inside its new mount namespace by init.

Every mount destination is resolved with openat2(RESOLVE_IN_ROOT) against a handle on the rootfs and
mounted through /proc/self/fd/N, so a symlink planted in the rootfs can never redirect a mount to the
host (the class of runc CVE-2021-30465).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from oci_runtime import linux
from oci_runtime.errors import RuntimeFailure

# option -> (clears the flag?, flag)
MOUNT_FLAGS = {
    "async": (True, linux.MS_SYNCHRONOUS), "atime": (True, linux.MS_NOATIME), "bind": (False, linux.MS_BIND),
    "defaults": (False, 0), "dev": (True, linux.MS_NODEV), "diratime": (True, linux.MS_NODIRATIME),
    "dirsync": (False, linux.MS_DIRSYNC), "exec": (True, linux.MS_NOEXEC), "iversion": (False, linux.MS_I_VERSION),
    "lazytime": (False, linux.MS_LAZYTIME), "loud": (True, linux.MS_SILENT), "mand": (False, linux.MS_MANDLOCK),
    "noatime": (False, linux.MS_NOATIME), "nodev": (False, linux.MS_NODEV), "nodiratime": (False, linux.MS_NODIRATIME),
    "noexec": (False, linux.MS_NOEXEC), "noiversion": (True, linux.MS_I_VERSION),
    "nolazytime": (True, linux.MS_LAZYTIME), "nomand": (True, linux.MS_MANDLOCK),
    "norelatime": (True, linux.MS_RELATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
    "nosuid": (False, linux.MS_NOSUID), "nosymfollow": (False, linux.MS_NOSYMFOLLOW),
    "rbind": (False, linux.MS_BIND | linux.MS_REC), "relatime": (False, linux.MS_RELATIME),
    "remount": (False, linux.MS_REMOUNT), "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "silent": (False, linux.MS_SILENT), "strictatime": (False, linux.MS_STRICTATIME),
    "suid": (True, linux.MS_NOSUID), "symfollow": (True, linux.MS_NOSYMFOLLOW),
    "sync": (False, linux.MS_SYNCHRONOUS),
}
PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# Options engines send that are not kernel options: handled by us, never passed as data.
EXTRA_OPTIONS = {"tmpcopyup", "notmpcopyup", "idmap", "ridmap"}
# Recursive attribute options: their plain form on the top mount, then mount_setattr(AT_RECURSIVE) for every
# mount below it. Each maps to (attributes set, attributes cleared).
RECURSIVE_MOUNT_ATTRS = {
    "rro": (linux.MOUNT_ATTR_RDONLY, 0), "rrw": (0, linux.MOUNT_ATTR_RDONLY),
    "rnosuid": (linux.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, linux.MOUNT_ATTR_NOSUID),
    "rnodev": (linux.MOUNT_ATTR_NODEV, 0), "rdev": (0, linux.MOUNT_ATTR_NODEV),
    "rnoexec": (linux.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, linux.MOUNT_ATTR_NOEXEC),
    "rnoatime": (linux.MOUNT_ATTR_NOATIME, linux.MOUNT_ATTR__ATIME),
    "ratime": (0, linux.MOUNT_ATTR_NOATIME), "rrelatime": (0, linux.MOUNT_ATTR__ATIME),
    "rstrictatime": (linux.MOUNT_ATTR_STRICTATIME, linux.MOUNT_ATTR__ATIME),
    "rnodiratime": (linux.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, linux.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (linux.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, linux.MOUNT_ATTR_NOSYMFOLLOW),
}
RECURSIVE_ATTRS = {"rro": "ro", "rrw": "rw", "rnosuid": "nosuid", "rsuid": "suid", "rnodev": "nodev",
                   "rdev": "dev", "rnoexec": "noexec", "rexec": "exec", "rnoatime": "noatime",
                   "ratime": "atime", "rrelatime": "relatime", "rstrictatime": "strictatime",
                   "rnodiratime": "nodiratime", "rdiratime": "diratime", "rnosymfollow": "nosymfollow",
                   "rsymfollow": "symfollow"}
# statvfs f_flag bits the kernel locks on mounts inherited into a user namespace
_LOCKED = {os.ST_RDONLY: linux.MS_RDONLY, os.ST_NOSUID: linux.MS_NOSUID, os.ST_NODEV: linux.MS_NODEV,
           os.ST_NOEXEC: linux.MS_NOEXEC, getattr(os, "ST_NOATIME", 1024): linux.MS_NOATIME,
           getattr(os, "ST_NODIRATIME", 2048): linux.MS_NODIRATIME, getattr(os, "ST_RELATIME", 4096): linux.MS_RELATIME}

DEFAULT_DEVICES = [  # path, major, minor: created in every container that has its own /dev
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
]
DEV_SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]


# Paths under /proc that may be mounted over: the files tools like LXCFS emulate (runc's list). Anything else
# inside /proc would let a container shadow what the kernel says about itself (CVE-2019-16884, -19921).
PROC_SAFE_MOUNTS = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
})


def container_path(path: str) -> str:
    """A path inside the container, normalised: runc reads a relative one as relative to /."""
    return posixpath.normpath("/" + path.lstrip("/"))


def proc_mount_problem(dest: str, mount: dict) -> str | None:
    """Why mounting `mount` at `dest` (normalised, inside the container) would be unsafe for /proc, or None."""
    if dest == "/proc":
        if mount.get("type") == "proc" and not is_bind(mount):
            return None
        if is_bind(mount) and os.path.realpath(mount.get("source") or "") == "/proc":
            return None
        return "only a proc filesystem may be mounted on /proc"
    if dest.startswith("/proc/") and dest not in PROC_SAFE_MOUNTS:
        return "mounts inside /proc are refused (but for the files LXCFS emulates)"
    return None


def parse_options(options: list[str] | None) -> tuple[int, int, list[str], set[str]]:
    """Split mount options into (flags, propagation flags, data options, extra options)."""
    flags = prop = 0
    data: list[str] = []
    extra: set[str] = set()
    for opt in options or []:
        opt = RECURSIVE_ATTRS.get(opt, opt)
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        elif opt in EXTRA_OPTIONS:
            extra.add(opt)
        else:
            data.append(opt)
    return flags, prop, data, extra


def is_bind(mount: dict) -> bool:
    return mount.get("type") == "bind" or any(o in ("bind", "rbind") for o in mount.get("options") or [])


class SafeRoot:
    """A handle on the rootfs; paths inside it resolve as if it were `/`, symlinks included."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.real = os.readlink(fd_path(self.fd))  # the root as the kernel names it, for resolve()

    def close(self) -> None:
        os.close(self.fd)

    def open(self, path: str, flags: int = linux.O_PATH, *, follow: bool = True) -> int:
        resolve = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
        if not follow:
            flags |= os.O_NOFOLLOW
        return linux.openat2(self.fd, path.lstrip("/") or ".", flags, 0, resolve)

    def resolve(self, path: str) -> str:
        """Where path leads inside the root, symlinks followed (as far as it exists; the rest appended)."""
        path = container_path(path)
        rest: list[str] = []
        while True:
            try:
                fd = self.open(path)
            except (FileNotFoundError, NotADirectoryError):
                if path == "/":
                    return "/"
                path, name = posixpath.split(path)
                rest.insert(0, name)
                continue
            try:
                real = os.readlink(fd_path(fd))
            finally:
                os.close(fd)
            inside = "/" + posixpath.relpath(real, self.real) if real != self.real else "/"
            return posixpath.normpath(posixpath.join(inside, *rest))

    def ensure(self, path: str, *, directory: bool = True, mode: int = 0o755) -> int:
        """Open `path` (O_PATH), creating what is missing: parents as directories, the last part as a
        directory or an empty file. Symlinks met on the way are followed by hand, always inside the root,
        and a dangling one gets its target created inside the root (never on the host)."""
        path = container_path(path)
        try:
            return self.open(path)
        except FileNotFoundError:
            pass
        parts = [p for p in path.split("/") if p]
        current = "/"
        fd = os.dup(self.fd)
        links = 0
        try:
            while parts:
                name = parts.pop(0)
                if name == "..":
                    current = posixpath.dirname(current)
                    os.close(fd)
                    fd = self.open(current)
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    self._create(fd, name, directory or bool(parts), mode)
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > 40:
                        raise OSError(errno.ELOOP, f'too many symlinks resolving "{path}"')
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):
                        current = "/"
                        os.close(fd)
                        fd = os.dup(self.fd)
                    parts = [p for p in target.split("/") if p] + parts
                    continue
                # one component, no symlink allowed: a swap by a racing process fails instead of escaping
                child = linux.openat2(fd, name, linux.O_PATH, 0, linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_BENEATH)
                os.close(fd)
                fd = child
                current = posixpath.join(current, name)
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _create(dir_fd: int, name: str, directory: bool, mode: int) -> None:
        try:
            if directory:
                os.mkdir(name, mode, dir_fd=dir_fd)
            else:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o644, dir_fd=dir_fd))
        except FileExistsError:
            pass  # made meanwhile by someone else: inspected by the caller like any existing entry


def _is_device(st: os.stat_result, kind: str, major: int, minor: int) -> bool:
    if kind == "p":
        return stat.S_ISFIFO(st.st_mode)
    wanted = stat.S_ISBLK if kind == "b" else stat.S_ISCHR
    return wanted(st.st_mode) and os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _remount_bind(target: str, flags: int, label: str) -> None:
    """Apply flags to a bind mount; keep the flags the kernel locked (user namespaces) if it refuses."""
    remount = linux.MS_BIND | linux.MS_REMOUNT | (flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT))
    try:
        linux.mount(None, target, None, remount, None, label=label)
    except PermissionError:
        locked = 0
        st = os.statvfs(target)
        for bit, flag in _LOCKED.items():
            if st.f_flag & bit:
                locked |= flag
        linux.mount(None, target, None, remount | locked, None, label=label)


def open_bind_sources(config: dict, bundle: str) -> dict[int, int]:
    """Detached copies (open_tree) of the bind mounts' sources, made by the runtime before it forks: with the
    runtime's own rights on the host's paths, which a container root in a user namespace may lack, and
    attachable from the container's mount namespace (runc opens them host-side too). A missing source is
    refused here, naming the mount."""
    trees: dict[int, int] = {}
    try:
        for index, mount in enumerate(config.get("mounts") or []):
            if not is_bind(mount):
                continue
            source = mount.get("source") or ""
            path = source if os.path.isabs(source) else os.path.join(bundle, source)
            recursive = bool(parse_options(mount.get("options"))[0] & linux.MS_REC)
            try:
                trees[index] = linux.open_tree(path, recursive=recursive)
            except FileNotFoundError:
                dest = container_path(mount.get("destination", ""))
                raise RuntimeFailure(f'error mounting "{source}" to rootfs at "{dest}": mount source "{source}" '
                                     "does not exist") from None
            except OSError as e:
                raise RuntimeFailure(f'mounts[{index}].source "{source}": {e.strerror}') from None
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


class RootfsBuilder:
    """Prepares the mounts of one container; runs in init, inside the new mount namespace."""

    def __init__(self, config: dict, bundle: str, rootfs: str, cgroup_manager=None, in_userns: bool = False,
                 bind_sources: dict[int, int] | None = None):
        self.config = config
        self.linux = config.get("linux") or {}
        self.bundle = bundle
        self.rootfs = rootfs
        self.cgroups = cgroup_manager
        self.in_userns = in_userns
        self.root: SafeRoot | None = None
        self.readonly_dev_flags: int | None = None
        self.bind_sources = bind_sources or {}  # mounts[i] -> a detached copy of its source (user namespaces)

    # -- before pivot_root ------------------------------------------------------------------------
    def prepare(self) -> None:
        # The tree is a slave unless the config asks for private or shared propagation (shared: what the
        # container mounts under a shared bind reaches the host, as with runc), recursively as after
        # pivot_root, where the propagation asked for is applied again. Unbindable waits until then (here it
        # would refuse the binds below).
        propagation = (self.linux.get("rootfsPropagation") or "").lstrip("r")
        flag = PROPAGATION[propagation] if propagation in ("private", "shared") else linux.MS_SLAVE
        linux.mount(None, "/", None, flag | linux.MS_REC, None, label="/ (propagation)")
        if flag == linux.MS_SHARED:
            # ...but the rootfs's own bind must not propagate, and pivot_root refuses a shared parent mount
            from oci_runtime import mountinfo

            mountpoint = mountinfo.containing(self.rootfs).mountpoint
            linux.mount(None, mountpoint, None, linux.MS_PRIVATE, None, label=mountpoint)
        # pivot_root needs the rootfs to be a mount point of its own
        linux.mount(self.rootfs, self.rootfs, None, linux.MS_BIND | linux.MS_REC, None, label="rootfs")
        self.root = SafeRoot(self.rootfs)
        for index, mount in enumerate(self.config.get("mounts") or []):
            self.mount_one(index, mount)
        for fd in self.bind_sources.values():
            os.close(fd)  # host paths: none may stay open once the mounts are made
        self.bind_sources = {}
        if self._needs_dev_setup():
            self.create_devices()
            self.create_dev_symlinks()
        if self.readonly_dev_flags is not None:
            if (self.config.get("process") or {}).get("terminal"):
                os.close(self.root.ensure("/dev/console", directory=False))  # the pty is bound there later
            self._remount_at("/dev", self.readonly_dev_flags | linux.MS_BIND)

    def _needs_dev_setup(self) -> bool:
        for mount in self.config.get("mounts") or []:
            if container_path(mount.get("destination", "")) == "/dev" and is_bind(mount):
                return False
        return True

    def mount_one(self, index: int, mount: dict) -> None:
        dest = container_path(mount.get("destination", ""))
        self._check_resolved_destination(dest, mount)
        mtype = mount.get("type") or ""
        options = mount.get("options") or []
        flags, prop, data, extra = parse_options(options)
        label = f'"{mount.get("source") or mtype}" to rootfs at "{dest}"'  # runc's wording
        try:
            if is_bind(mount):
                self._mount_bind(mount, dest, flags, label, self.bind_sources.get(index))
            elif mtype == "cgroup":
                self._mount_cgroup(dest, flags, label)
            else:
                if mtype in ("proc", "sysfs"):
                    self._refuse_symlink(dest, mtype)
                if dest == "/dev" and flags & linux.MS_RDONLY:
                    # made read-only once the devices and the mounts inside /dev (pts, shm, mqueue) are in place
                    self.readonly_dev_flags = flags
                    flags &= ~linux.MS_RDONLY
                fd = self.root.ensure(dest)
                try:
                    target = fd_path(fd)
                    linux.mount(mount.get("source") or mtype, target, mtype, flags & ~linux.MS_REMOUNT,
                               ",".join(data) or None, label=dest)
                    if "tmpcopyup" in extra:
                        tmpfs = self.root.open(dest)  # resolved anew: the new mount, where fd is under it
                        try:
                            self._copy_up(fd, tmpfs, dest)
                        finally:
                            os.close(tmpfs)
                finally:
                    os.close(fd)
            if prop:
                fd = self.root.open(dest)
                try:
                    linux.mount(None, fd_path(fd), None, prop, None, label=dest)
                finally:
                    os.close(fd)
            self._set_recursive_attrs(dest, options)
        except OSError as e:
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            raise RuntimeFailure(f"error mounting {label}: {reason}") from None

    def _set_recursive_attrs(self, dest: str, options: list[str]) -> None:
        attr_set = attr_clr = 0
        for option in options:
            if option in RECURSIVE_MOUNT_ATTRS:
                add, remove = RECURSIVE_MOUNT_ATTRS[option]
                attr_set, attr_clr = (attr_set & ~remove) | add, attr_clr | remove
        if not (attr_set or attr_clr):
            return
        fd = self.root.open(dest)  # the mount itself, not what it covers
        try:
            linux.mount_setattr(fd, attr_set, attr_clr, label=dest)
        finally:
            os.close(fd)

    def _check_resolved_destination(self, dest: str, mount: dict) -> None:
        """The /proc rule again, on where dest really leads once the rootfs's symlinks are followed (a
        symlink /x -> /proc/self turns /x/attr into /proc/self/attr)."""
        resolved = self.root.resolve(dest)
        problem = proc_mount_problem(resolved, mount) if resolved != dest else None
        if problem:
            raise RuntimeFailure(f'mount destination "{dest}" leads to "{resolved}": {problem}')

    def _refuse_symlink(self, dest: str, mtype: str) -> None:
        try:
            st = os.stat(dest.lstrip("/"), dir_fd=self.root.fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise RuntimeFailure(f'{mtype} must be mounted on ordinary directory: "{dest}" is a symlink '
                                 "(refused, see CVE-2019-19921)")

    def _mount_bind(self, mount: dict, dest: str, flags: int, label: str, tree: int | None) -> None:
        if tree is not None:  # made by the runtime on the host side (user namespaces): attach it
            fd = self.root.ensure(dest, directory=stat.S_ISDIR(os.fstat(tree).st_mode))
            try:
                linux.move_mount(tree, fd, label=dest)
            finally:
                os.close(fd)
        else:
            self._bind_from_path(mount, dest, flags, label)
        if flags & ~(linux.MS_BIND | linux.MS_REC):
            self._remount_at(dest, flags)

    def _bind_from_path(self, mount: dict, dest: str, flags: int, label: str) -> None:
        source = mount.get("source") or ""
        if not os.path.isabs(source):
            source = os.path.join(self.bundle, source)
        try:
            st = os.stat(source)
        except FileNotFoundError:
            raise RuntimeFailure(f'error mounting {label}: mount source "{mount.get("source")}" does not exist') from None
        src_fd = os.open(source, linux.O_PATH | os.O_CLOEXEC)
        try:
            fd = self.root.ensure(dest, directory=stat.S_ISDIR(st.st_mode))
            try:
                linux.mount(fd_path(src_fd), fd_path(fd), None, linux.MS_BIND | (flags & linux.MS_REC), None,
                            label=dest)
            finally:
                os.close(fd)
        finally:
            os.close(src_fd)

    def _remount_at(self, dest: str, flags: int) -> None:
        fd = self.root.open(dest)  # resolved anew, so the handle is on the new mount, not under it
        try:
            _remount_bind(fd_path(fd), flags, dest)
        finally:
            os.close(fd)

    def _mount_cgroup(self, dest: str, flags: int, label: str) -> None:
        flags &= ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT)
        fd = self.root.ensure(dest)
        try:
            target = fd_path(fd)
            if self.cgroups is None:
                return
            if self.cgroups.version == 2:
                if any(ns.get("type") == "cgroup" and not ns.get("path") for ns in self.linux.get("namespaces") or []):
                    linux.mount("cgroup2", target, "cgroup2", flags, None, label=dest)
                    return
                host_dir = self.cgroups.mounts_for_container()[0][0]
                linux.mount(host_dir, target, None, linux.MS_BIND | linux.MS_REC, None, label=dest)
                self._remount_at(dest, flags | linux.MS_BIND)
                return
            # cgroup v1: a tmpfs holding a bind of the container's own cgroup for each controller
            linux.mount("tmpfs", target, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755", label=dest)
        finally:
            os.close(fd)
        for host_dir, sub in self.cgroups.mounts_for_container():
            sub_dest = posixpath.join(dest, sub)
            if not host_dir.startswith("/"):
                # a co-mounted hierarchy's other name (cpu -> cpu,cpuacct): a symlink, as on the host
                dfd = self.root.open(dest)
                try:
                    os.symlink(host_dir, sub, dir_fd=dfd)
                except FileExistsError:
                    pass
                finally:
                    os.close(dfd)
                continue
            if not os.path.isdir(host_dir):
                continue
            sfd = self.root.ensure(sub_dest)
            try:
                linux.mount(host_dir, fd_path(sfd), None, linux.MS_BIND | linux.MS_REC, None, label=sub_dest)
            finally:
                os.close(sfd)
            self._remount_at(sub_dest, flags | linux.MS_BIND)
        if flags & linux.MS_RDONLY:
            fd = self.root.open(dest)
            try:
                linux.mount(None, fd_path(fd), None, linux.MS_REMOUNT | flags, "mode=755", label=dest)
            finally:
                os.close(fd)

    def _copy_up(self, image_dir: int, tmpfs: int, dest: str) -> None:
        """podman's tmpcopyup: the new tmpfs starts with what the image had at that path (image_dir is a
        handle on the directory under the tmpfs, taken before it was mounted)."""
        import subprocess

        # cp resolves /proc/self/fd/N in its own process: pass it our two handles under the same numbers.
        out = subprocess.run(["cp", "-a", "--", f"{fd_path(image_dir)}/.", f"{fd_path(tmpfs)}/"],
                             pass_fds=(image_dir, tmpfs), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise RuntimeFailure(f'tmpcopyup of "{dest}": {out.stderr.strip() or f"cp exited {out.returncode}"}')

    def create_devices(self) -> None:
        devices = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                   for p, ma, mi in DEFAULT_DEVICES]
        configured = {posixpath.normpath(d["path"]) for d in self.linux.get("devices") or []}
        for dev in devices:
            if dev["path"] not in configured:
                self._create_device(dev, required=False)
        devpts_ptmx = self._mounts_devpts()
        for dev in self.linux.get("devices") or []:
            if devpts_ptmx and posixpath.normpath(dev.get("path", "")) == "/dev/ptmx":
                continue  # /dev/ptmx becomes the devpts one (create_dev_symlinks), as in runc: no node to make
            self._create_device(dev, required=True)

    def _mounts_devpts(self) -> bool:
        return any(container_path(m.get("destination", "")) == "/dev/pts" for m in self.config.get("mounts") or [])

    def _create_device(self, dev: dict, *, required: bool) -> None:
        """Make the node. Something already at its path is kept if it is that very device; otherwise a
        configured device is an error (the spec's rule: never replace a file of the image), and a default
        one is left as the image has it (runc's behaviour)."""
        path = container_path(dev["path"])
        kind = dev.get("type", "c")
        mode = dev.get("fileMode", 0o666) & 0o7777
        parent, name = posixpath.split(path)
        pfd = self.root.ensure(parent)
        try:
            try:
                existing = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                if not _is_device(existing, kind, dev.get("major", 0), dev.get("minor", 0)):
                    if required:
                        raise RuntimeFailure(f'linux.devices: "{path}" already exists in the rootfs and is not '
                                             f"that device")
                    return
                os.unlink(name, dir_fd=pfd)  # the same device: made anew with the configured mode and owner
            try:
                if kind == "p":
                    os.mkfifo(name, mode, dir_fd=pfd)
                else:
                    fmt = stat.S_IFBLK if kind == "b" else stat.S_IFCHR
                    os.mknod(name, fmt | mode, os.makedev(dev.get("major", 0), dev.get("minor", 0)), dir_fd=pfd)
            except PermissionError:
                if not self.in_userns:
                    raise
                # mknod is refused in a user namespace: bind the host's node instead
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=pfd))
                nfd = linux.openat2(pfd, name, linux.O_PATH, 0, linux.RESOLVE_IN_ROOT)
                try:
                    linux.mount(path, fd_path(nfd), None, linux.MS_BIND, None, label=path)
                finally:
                    os.close(nfd)
                return
            os.chmod(name, mode, dir_fd=pfd)  # umask may have cut the mode
            os.chown(name, dev.get("uid", 0), dev.get("gid", 0), dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise RuntimeFailure(f'creating device node "{path}": {e.strerror or e}') from None
        finally:
            os.close(pfd)

    def create_dev_symlinks(self) -> None:
        links = list(DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        if self._mounts_devpts():
            links.append(("pts/ptmx", "/dev/ptmx"))
        dfd = self.root.ensure("/dev")
        try:
            for target, link in links:
                name = posixpath.basename(link)
                try:
                    os.symlink(target, name, dir_fd=dfd)
                except FileExistsError:
                    if name == "ptmx":  # a ptmx device node from the image gives way to the devpts one
                        try:
                            os.unlink(name, dir_fd=dfd)
                            os.symlink(target, name, dir_fd=dfd)
                        except OSError as e:  # e.g. a mount on /dev/ptmx (EBUSY)
                            raise RuntimeFailure(f'making "{link}" a symlink to the devpts one ("{target}"): '
                                                 f"{e.strerror}") from None
        finally:
            os.close(dfd)

    # -- pivot_root and after ---------------------------------------------------------------------
    def pivot(self, no_pivot: bool = False) -> None:
        os.fchdir(self.root.fd)
        if no_pivot:
            self._hide_full_proc_and_sysfs()
            linux.mount(".", "/", None, linux.MS_MOVE, None, label="/ (move rootfs)")
            os.chroot(".")
        else:
            old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.pivot_root(".", ".")
                # The old root is now stacked on the new one. Make it (and only it: "." must name the old
                # root's mount, not the new root's, whose shared binds would turn into slaves) a slave so
                # that its unmount does not propagate to the host, then detach it.
                os.fchdir(old_root)
            finally:
                os.close(old_root)
            linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC, None, label="old root")
            linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")
        self.root.close()
        self.root = None

    def _hide_full_proc_and_sysfs(self) -> None:
        """Without pivot_root the host's mounts stay in our mount namespace, out of sight but not out of the
        kernel's: a full procfs or sysfs mount there lets the container mount a new, unmasked one. Detach
        them (or cover them where detaching is refused), as runc does for --no-pivot."""
        from oci_runtime import mountinfo

        rootfs = self.rootfs.rstrip("/") + "/"
        for m in mountinfo.mounts():
            mountpoint = m.mountpoint
            if m.root != "/" or m.fstype not in ("proc", "sysfs") or (mountpoint + "/").startswith(rootfs):
                continue
            try:
                linux.mount(None, mountpoint, None, linux.MS_SLAVE | linux.MS_REC, None, label=mountpoint)
                linux.umount2(mountpoint, linux.MNT_DETACH)
            except FileNotFoundError:
                continue  # gone with a mount detached before it
            except OSError:
                linux.mount("tmpfs", mountpoint, "tmpfs", 0, None, label=mountpoint)

    def finish(self) -> None:
        """Masked and read-only paths, then a read-only root: all after pivot_root."""
        for path in self.linux.get("readonlyPaths") or []:
            self._readonly(path)
        for path in self.linux.get("maskedPaths") or []:
            self._mask(path)
        if (self.config.get("root") or {}).get("readonly"):
            _remount_bind("/", linux.MS_BIND | linux.MS_RDONLY, "/")
        propagation = self.linux.get("rootfsPropagation")
        if propagation in PROPAGATION:  # last: an unbindable tree would refuse the binds above
            linux.mount(None, "/", None, PROPAGATION[propagation] | linux.MS_REC, None, label="/ (propagation)")

    @staticmethod
    def _readonly(path: str) -> None:
        try:
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
        except FileNotFoundError:
            return
        except OSError as e:
            raise RuntimeFailure(f'making "{path}" read-only: {e.strerror}') from None
        _remount_bind(path, linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, path)

    @staticmethod
    def _mask(path: str) -> None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            if stat.S_ISDIR(st.st_mode):
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, None)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND, None)
        except OSError as e:
            if e.errno in (errno.ENOENT,):
                return
            raise RuntimeFailure(f'masking "{path}": {e.strerror}') from None


def write_sysctls(sysctls: dict[str, str] | None) -> None:
    for key, value in (sysctls or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise RuntimeFailure(f"setting sysctl {key}={value}: {e.strerror or e}") from None
