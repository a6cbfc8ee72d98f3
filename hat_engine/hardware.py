"""This host's hardware profile: what a latency measurement depends on, and the `profile_id` catalogs key on.

HAT (Wang et al., 2020, §3) searches one SubTransformer per hardware target; a catalog therefore keeps its entries
per hardware profile, and serving picks the entries whose `hardware_profile` equals this host's `profile_id`.

The profile reads the CPU from `/proc/cpuinfo`, the CPU and memory limits from the cgroup files (v2 `cpu.max` /
`memory.max`, else v1 `cpu.cfs_quota_us` / `memory.limit_in_bytes`), memory from psutil and CUDA from torch. Every
path is an argument so tests can point them at fake files; nothing here reads the environment or argv.

ISA tiers of `profile_id`, best first (the first whose flags the CPU has wins):
    amx         amx_tile (Sapphire Rapids and later): tiled int8/bf16 matrix units
    avx512bf16  avx512_bf16 (Cooper Lake, Zen 4): bf16 dot products
    avx512vnni  avx512_vnni (Cascade Lake, Ice Lake): int8 dot products
    avx512      avx512f (Skylake-SP)
    avx2        avx2 (Haswell, Zen 1-3)
    neon        aarch64 asimd (every 64-bit Arm: Graviton, Ampere, Apple)
    base        none of the above
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hat_engine.errors import HardwareError

BACKENDS = ("onnxruntime", "torch")

# Raw flag names (x86 `flags`, aarch64 `Features`, and spellings without the underscore) -> normalised name.
_ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_bf16": "avx512_bf16",
    "avx512bf16": "avx512_bf16",
    "avx512_vnni": "avx512_vnni",
    "avx512vnni": "avx512_vnni",
    "amx_tile": "amx_tile",
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
    "asimd": "neon",
    "neon": "neon",
    "sve": "sve",
    "i8mm": "i8mm",
}

# (tier, normalised flag that grants it), best first; the module docstring explains each.
ISA_TIERS = (
    ("amx", "amx_tile"),
    ("avx512bf16", "avx512_bf16"),
    ("avx512vnni", "avx512_vnni"),
    ("avx512", "avx512f"),
    ("avx2", "avx2"),
    ("neon", "neon"),
)

# aarch64 cpuinfo has no model name: name the common server cores from `CPU implementer` / `CPU part`.
_ARM_IMPLEMENTERS = {0x41: "ARM", 0x48: "HiSilicon", 0x51: "Qualcomm", 0x61: "Apple", 0xC0: "Ampere"}
_ARM_PARTS = {
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0xC0, 0xAC3): "Ampere-1",
}

# cgroup v1 writes "no limit" as a huge page-aligned number (9223372036854771712); anything this big is unlimited.
_UNLIMITED_BYTES = 1 << 60


@dataclass(frozen=True)
class HardwareProfile:
    """One host as a latency measurement sees it: CPU, limits, optional GPU, and the runtime settings."""

    cpu_model: str
    vendor: str
    arch: str
    isa_flags: tuple[str, ...]  # sorted, normalised (see _ISA_FLAGS)
    logical_cores: int
    physical_cores: int | None
    cpu_quota: float | None  # cgroup quota in CPUs; None when unlimited or absent
    cpu_limit: float  # min(cpu_quota, affinity count, logical_cores)
    memory_total_bytes: int
    memory_limit_bytes: int | None  # cgroup limit; None when unlimited or absent
    cuda_device: str | None
    cuda_capability: str | None  # e.g. "9.0"
    cuda_memory_bytes: int | None
    backend: str
    threads: int

    @property
    def device(self) -> str:
        """`cpu`, or `cuda-<gpu name>` when the torch backend will run on a GPU."""
        if self.backend == "torch" and self.cuda_device:
            return "cuda-" + _slug(self.cuda_device)
        return "cpu"

    @property
    def isa_tier(self) -> str:
        return next((tier for tier, flag in ISA_TIERS if flag in self.isa_flags), "base")

    @property
    def profile(self) -> ProfileId:
        return ProfileId(self.device, _slug(self.arch, keep="_"), self.isa_tier, self.threads, self.backend)

    @property
    def profile_id(self) -> str:
        """E.g. `cpu-x86_64-avx512bf16-2t-onnxruntime`: same host, backend and threads give the same id."""
        return str(self.profile)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["isa_flags"] = list(self.isa_flags)
        return {"profile_id": self.profile_id, "device": self.device, "isa_tier": self.isa_tier, **data}


@dataclass(frozen=True)
class ProfileId:
    """A hardware profile's id as fields: `cpu-x86_64-avx2-2t-onnxruntime` is device `cpu`, arch `x86_64`, ISA
    tier `avx2`, 2 threads, backend `onnxruntime` (the device may hold '-': `cuda-nvidia-h200`)."""

    device: str
    arch: str
    isa: str
    threads: int
    backend: str

    def __str__(self) -> str:
        return f"{self.device}-{self.arch}-{self.isa}-{self.threads}t-{self.backend}"

    @classmethod
    def parse(cls, text: str) -> ProfileId:
        parts = text.split("-")
        threads = parts[-2][:-1] if len(parts) >= 5 else ""
        if len(parts) < 5 or not parts[-2].endswith("t") or not threads.isdigit():
            raise HardwareError(f"{text!r} is not a profile id like cpu-x86_64-avx2-2t-onnxruntime")
        return cls("-".join(parts[:-4]), parts[-4], parts[-3], int(threads), parts[-1])

    def same_host_kind(self, other: ProfileId) -> bool:
        """Same device, arch, ISA tier and backend: the thread count may differ."""
        return (self.device, self.arch, self.isa, self.backend) == (other.device, other.arch, other.isa, other.backend)


def detect(
    backend: str = "onnxruntime",
    threads: int | None = None,
    *,
    cpuinfo_path: str | Path = "/proc/cpuinfo",
    cgroup_root: str | Path = "/sys/fs/cgroup",
    affinity: set[int] | None = None,
    machine: str | None = None,
    probe_cuda: bool = True,
) -> HardwareProfile:
    """Profile this host for `backend` with `threads` intra-op threads (default: the effective CPU limit, >= 1).

    `affinity` defaults to this process's CPU set, `machine` to `platform.machine()`; `probe_cuda=False` skips torch.
    """
    if backend not in BACKENDS:
        raise HardwareError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if threads is not None and threads < 1:
        raise HardwareError(f"threads must be at least 1, got {threads}")
    cpu = _read_cpuinfo(Path(cpuinfo_path))
    logical = cpu["logical"] or os.cpu_count() or 1
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(logical))
    quota = cgroup_cpu_quota(cgroup_root)
    limit = float(min(logical, len(affinity) or logical, quota if quota is not None else math.inf))
    cuda = _cuda_info() if probe_cuda else (None, None, None)
    return HardwareProfile(
        cpu_model=cpu["model"],
        vendor=cpu["vendor"],
        arch=machine or platform.machine() or "unknown",
        isa_flags=cpu["flags"],
        logical_cores=logical,
        physical_cores=cpu["physical"] or _psutil_physical_cores(),
        cpu_quota=quota,
        cpu_limit=limit,
        memory_total_bytes=_memory_total(),
        memory_limit_bytes=cgroup_memory_limit(cgroup_root),
        cuda_device=cuda[0],
        cuda_capability=cuda[1],
        cuda_memory_bytes=cuda[2],
        backend=backend,
        threads=threads if threads is not None else max(1, math.floor(limit)),
    )


def cgroup_cpu_quota(cgroup_root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The cgroup CPU quota in CPUs (1.5 for "150000 100000"), or None when unlimited or unreadable."""
    root = Path(cgroup_root)
    v2 = _read_text(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for folder in ("cpu,cpuacct", "cpu"):
        quota = _read_text(root / folder / "cpu.cfs_quota_us")
        period = _read_text(root / folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def cgroup_memory_limit(cgroup_root: str | Path = "/sys/fs/cgroup") -> int | None:
    """The cgroup memory limit in bytes (v2 `memory.max`, else v1 `memory.limit_in_bytes`), None if unlimited."""
    root = Path(cgroup_root)
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        text = _read_text(path)
        if text is not None:
            try:
                value = int(text)
            except ValueError:  # "max" in v2
                return None
            return value if 0 < value < _UNLIMITED_BYTES else None
    return None


def native_bf16(device: str = "cpu", cpuinfo_path: str | Path = "/proc/cpuinfo") -> bool:
    """Whether bf16 matrix maths runs natively on `device`: a CUDA GPU that supports it, or a CPU with AMX or
    AVX-512 BF16. Elsewhere bf16 is emulated: on an AVX2-only AMD EPYC a bf16 GEMM ran 7x slower than fp32."""
    if str(device).startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    flags = _read_cpuinfo(Path(cpuinfo_path))["flags"]
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _read_cpuinfo(path: Path) -> dict[str, Any]:
    """Model, vendor, normalised ISA flags, logical and physical core counts from a cpuinfo file (0 if unknown)."""
    text = _read_text(path) or ""
    fields: dict[str, str] = {}
    logical, cores, current = 0, set(), {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        if key == "processor":
            logical += 1
            current = {}
        elif key in ("physical id", "core id"):
            current[key] = value
            if len(current) == 2:
                cores.add((current["physical id"], current["core id"]))
        fields.setdefault(key, value)
    raw_flags = (fields.get("flags", "") + " " + fields.get("Features", "")).split()
    flags = tuple(sorted({_ISA_FLAGS[f] for f in raw_flags if f in _ISA_FLAGS}))
    model, vendor = fields.get("model name", ""), fields.get("vendor_id", "")
    if "CPU implementer" in fields:
        implementer, part = _hex(fields["CPU implementer"]), _hex(fields.get("CPU part", ""))
        vendor = vendor or _ARM_IMPLEMENTERS.get(implementer, fields["CPU implementer"])
        model = model or _ARM_PARTS.get((implementer, part), f"{vendor} part {fields.get('CPU part', '?')}")
    model = " ".join(model.split()) or platform.processor() or "unknown"
    return {"model": model, "vendor": vendor or "unknown", "flags": flags, "logical": logical, "physical": len(cores)}


def _cuda_info() -> tuple[str | None, str | None, int | None]:
    """(name, compute capability, memory bytes) of CUDA device 0, or Nones when torch sees no GPU."""
    # Without an NVIDIA device node there is no CUDA device: skip importing torch (~2 s) on CPU hosts.
    if not any(Path("/dev").glob("nvidia[0-9]*")):
        return None, None, None
    import torch

    if not torch.cuda.is_available():
        return None, None, None
    props = torch.cuda.get_device_properties(0)
    return props.name, f"{props.major}.{props.minor}", int(props.total_memory)


def _psutil_physical_cores() -> int | None:
    import psutil

    return psutil.cpu_count(logical=False)


def _memory_total() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # v1 writes -1 for unlimited


def _hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _slug(text: str, keep: str = "") -> str:
    """Lower-case, runs of anything but letters, digits and `keep` become one '-'."""
    return re.sub(rf"[^a-z0-9{re.escape(keep)}]+", "-", text.lower()).strip("-") or "unknown"
