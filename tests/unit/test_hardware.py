"""Hardware profile: cpuinfo parsing, cgroup limits, ISA tiers, profile_id, and `hat detect`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hat_engine.errors import HardwareError, HatError
from hat_engine.hardware import cgroup_cpu_quota, cgroup_memory_limit, detect


def _x86_cpuinfo(model: str, vendor: str, flags: str, sockets: int = 1, cores: int = 2, smt: int = 2) -> str:
    blocks, n = [], 0
    for socket in range(sockets):
        for _ in range(smt):
            for core in range(cores):
                blocks.append(
                    f"processor\t: {n}\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
                    f"physical id\t: {socket}\ncore id\t\t: {core}\nflags\t\t: {flags}\n"
                )
                n += 1
    return "\n".join(blocks)


EPYC = _x86_cpuinfo(
    "AMD EPYC 9R14 96-Core Processor",
    "AuthenticAMD",
    "fpu sse sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512vl avx512_vnni",
)
SAPPHIRE_RAPIDS = _x86_cpuinfo(
    "Intel(R) Xeon(R) Platinum 8488C",
    "GenuineIntel",
    "sse avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8",
    sockets=2,
)
HASWELL = _x86_cpuinfo("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz", "GenuineIntel", "sse sse2 avx fma avx2", smt=1)
GRAVITON = "\n".join(
    f"processor\t: {n}\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve i8mm\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd40\nCPU revision\t: 1\n"
    for n in range(4)
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _profile(tmp_path: Path, cpuinfo: str, machine: str = "x86_64", **kwargs):
    kwargs.setdefault("affinity", set(range(64)))
    kwargs.setdefault("cgroup_root", tmp_path / "no-cgroup")
    path = _write(tmp_path / "cpuinfo", cpuinfo)
    return detect(cpuinfo_path=path, machine=machine, probe_cuda=False, **kwargs)


def test_epyc_with_avx512_bf16(tmp_path):
    p = _profile(tmp_path, EPYC, threads=2)
    assert p.cpu_model == "AMD EPYC 9R14 96-Core Processor" and p.vendor == "AuthenticAMD"
    assert p.isa_flags == ("avx2", "avx512_bf16", "avx512_vnni", "avx512f")
    assert (p.logical_cores, p.physical_cores) == (4, 2)
    assert p.profile_id == "cpu-x86_64-avx512bf16-2t-onnxruntime"


def test_sapphire_rapids_with_amx(tmp_path):
    p = _profile(tmp_path, SAPPHIRE_RAPIDS, backend="torch", threads=4)
    assert {"amx_tile", "amx_bf16", "amx_int8"} <= set(p.isa_flags)
    assert (p.logical_cores, p.physical_cores) == (8, 4)
    assert p.profile_id == "cpu-x86_64-amx-4t-torch"


def test_graviton_aarch64_features(tmp_path):
    p = _profile(tmp_path, GRAVITON, machine="aarch64", threads=4)
    assert p.isa_flags == ("i8mm", "neon", "sve")
    assert (p.vendor, p.cpu_model, p.logical_cores) == ("ARM", "Neoverse-V1", 4)
    assert p.profile_id == "cpu-aarch64-neon-4t-onnxruntime"


def test_old_avx2_only_cpu(tmp_path):
    p = _profile(tmp_path, HASWELL)
    assert p.isa_flags == ("avx2",)
    assert (p.logical_cores, p.physical_cores, p.cpu_limit) == (2, 2, 2.0)
    assert p.profile_id == "cpu-x86_64-avx2-2t-onnxruntime"


def test_no_known_flags_is_base(tmp_path):
    assert _profile(tmp_path, _x86_cpuinfo("Old", "GenuineIntel", "fpu sse sse2")).isa_tier == "base"


@pytest.mark.parametrize(
    ("cpu_max", "quota", "threads"),
    [("max 100000", None, 4), ("100000 100000", 1.0, 1), ("150000 100000", 1.5, 1), ("50000 100000", 0.5, 1)],
)
def test_cgroup_v2_cpu_limit(tmp_path, cpu_max, quota, threads):
    _write(tmp_path / "cg" / "cpu.max", cpu_max + "\n")
    p = _profile(tmp_path, EPYC, cgroup_root=tmp_path / "cg")
    assert p.cpu_quota == quota
    assert p.cpu_limit == (quota if quota is not None else 4.0)
    assert p.threads == threads
    assert p.profile_id == f"cpu-x86_64-avx512bf16-{threads}t-onnxruntime"


@pytest.mark.parametrize("folder", ["cpu,cpuacct", "cpu"])
@pytest.mark.parametrize(("quota_us", "quota"), [("-1", None), ("100000", 1.0), ("150000", 1.5), ("50000", 0.5)])
def test_cgroup_v1_cpu_quota(tmp_path, folder, quota_us, quota):
    _write(tmp_path / folder / "cpu.cfs_quota_us", quota_us + "\n")
    _write(tmp_path / folder / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(tmp_path) == quota


def test_affinity_smaller_than_quota(tmp_path):
    _write(tmp_path / "cg" / "cpu.max", "300000 100000")
    p = _profile(tmp_path, SAPPHIRE_RAPIDS, cgroup_root=tmp_path / "cg", affinity={0, 1})
    assert (p.cpu_quota, p.cpu_limit, p.threads) == (3.0, 2.0, 2)


def test_memory_limits(tmp_path):
    assert cgroup_memory_limit(tmp_path) is None
    _write(tmp_path / "v2" / "memory.max", "max\n")
    assert cgroup_memory_limit(tmp_path / "v2") is None
    _write(tmp_path / "v2" / "memory.max", "4294967296\n")
    assert cgroup_memory_limit(tmp_path / "v2") == 4 << 30
    _write(tmp_path / "v1" / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(tmp_path / "v1") is None
    _write(tmp_path / "v1" / "memory" / "memory.limit_in_bytes", "2147483648\n")
    p = _profile(tmp_path, EPYC, cgroup_root=tmp_path / "v1")
    assert p.memory_limit_bytes == 2 << 30 and p.memory_total_bytes > 0


def test_profile_is_deterministic_and_json_friendly(tmp_path):
    first, second = _profile(tmp_path, EPYC), _profile(tmp_path, EPYC)
    assert first == second and first.profile_id == second.profile_id
    data = json.loads(json.dumps(first.to_dict()))
    assert data["profile_id"] == first.profile_id and data["isa_flags"] == list(first.isa_flags)
    assert _profile(tmp_path, EPYC, threads=3).profile_id != first.profile_id
    assert _profile(tmp_path, EPYC, backend="torch").profile_id != first.profile_id


def test_cuda_device_names_the_torch_profile(tmp_path):
    from dataclasses import replace

    p = replace(_profile(tmp_path, SAPPHIRE_RAPIDS, threads=1), cuda_device="NVIDIA H200", cuda_capability="9.0")
    assert p.profile_id == "cpu-x86_64-amx-1t-onnxruntime"
    assert replace(p, backend="torch").profile_id == "cuda-nvidia-h200-x86_64-amx-1t-torch"


def test_unknown_backend_and_bad_threads(tmp_path):
    with pytest.raises(HardwareError, match="'tensorrt'"):
        _profile(tmp_path, EPYC, backend="tensorrt")
    with pytest.raises(HatError, match="threads"):
        _profile(tmp_path, EPYC, threads=0)


def _hat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search_jobs.cli", *args], capture_output=True, text=True)


def test_hat_detect_prints_json_with_profile_id():
    result = _hat("detect")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile_id"].endswith(f"-{data['threads']}t-onnxruntime") and data["threads"] >= 1


def test_hat_detect_bad_threads_is_one_line(capsys):
    from search_jobs.cli import main

    assert main(["detect", "--threads", "0"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == ["hat: error: threads must be at least 1, got 0"]


def test_profile_id_is_typed_and_round_trips():
    from hat_engine.errors import HardwareError
    from hat_engine.hardware import ProfileId

    p = ProfileId.parse("cuda-nvidia-h200-x86_64-amx-16t-torch")
    assert (p.device, p.arch, p.isa, p.threads, p.backend) == ("cuda-nvidia-h200", "x86_64", "amx", 16, "torch")
    assert str(p) == "cuda-nvidia-h200-x86_64-amx-16t-torch"
    assert p.same_host_kind(ProfileId.parse("cuda-nvidia-h200-x86_64-amx-1t-torch"))
    assert not p.same_host_kind(ProfileId.parse("cpu-x86_64-amx-16t-torch"))
    for bad in ("cpu", "cpu-x86_64-avx2-two-onnxruntime", "cpu-x86_64-avx2-t-onnxruntime"):
        with pytest.raises(HardwareError, match="not a profile id"):
            ProfileId.parse(bad)
