"""The workbook child's memory cap: the cgroup limit, read from a fake filesystem root."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer import workbook
from importer.workbook import CHILD_MEMORY, cgroup_memory_limit, child_memory

MiB = 1 << 20
V1_UNLIMITED = "9223372036854771712"  # what cgroup v1 writes when no limit is set


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    """A root with ``proc/self/cgroup`` holding ``cgroup`` and each of ``files`` (path: text)."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup, encoding="utf-8")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_v2_container_reads_its_own_root_cgroup(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "0::/\n", {"sys/fs/cgroup/memory.max": f"{512 * MiB}\n"})
    assert cgroup_memory_limit(root) == 512 * MiB


def test_v2_max_is_no_limit(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "0::/\n", {"sys/fs/cgroup/memory.max": "max\n"})
    assert cgroup_memory_limit(root) is None


def test_v2_follows_the_process_cgroup_and_takes_the_smallest_on_the_way_up(
    tmp_path: Path,
) -> None:
    root = fake_root(
        tmp_path,
        "0::/system.slice/rd-importer.service\n",
        {
            "sys/fs/cgroup/system.slice/rd-importer.service/memory.max": f"{3072 * MiB}\n",
            "sys/fs/cgroup/system.slice/memory.max": f"{2048 * MiB}\n",
            "sys/fs/cgroup/memory.max": "max\n",
        },
    )
    assert cgroup_memory_limit(root) == 2048 * MiB


def test_v2_own_cgroup_limit_below_its_parents(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path,
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        {
            "sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/memory.max": f"{MiB * 300}",
            "sys/fs/cgroup/user.slice/memory.max": "max",
        },
    )
    assert cgroup_memory_limit(root) == 300 * MiB


def test_v1_container_without_a_namespace_finds_its_limit_at_the_mount_root(
    tmp_path: Path,
) -> None:
    # Docker on cgroup v1 mounts the container's own cgroup at /sys/fs/cgroup/memory, while
    # /proc/self/cgroup still names the host's path, which does not exist inside.
    root = fake_root(
        tmp_path,
        "12:pids:/docker/3f9a\n4:memory:/docker/3f9a\n1:name=systemd:/docker/3f9a\n",
        {"sys/fs/cgroup/memory/memory.limit_in_bytes": f"{1024 * MiB}\n"},
    )
    assert cgroup_memory_limit(root) == 1024 * MiB


def test_v1_unlimited_and_comounted_controllers(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path,
        "3:cpuacct,memory:/batch\n",
        {
            "sys/fs/cgroup/memory/batch/memory.limit_in_bytes": f"{768 * MiB}\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{V1_UNLIMITED}\n",
        },
    )
    assert cgroup_memory_limit(root) == 768 * MiB
    (root / "sys/fs/cgroup/memory/batch/memory.limit_in_bytes").write_text(V1_UNLIMITED)
    assert cgroup_memory_limit(root) is None


def test_hybrid_hierarchy_takes_the_smallest_of_v1_and_v2(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path,
        "4:memory:/job\n0::/job\n",
        {
            "sys/fs/cgroup/memory/job/memory.limit_in_bytes": f"{900 * MiB}\n",
            "sys/fs/cgroup/job/memory.max": f"{600 * MiB}\n",
        },
    )
    assert cgroup_memory_limit(root) == 600 * MiB


@pytest.mark.parametrize(
    ("cgroup", "files"),
    [
        ("", {}),  # no cgroup lines at all
        ("garbage without colons\n", {}),
        ("0::/\n", {}),  # v2 host root: no memory.max file
        ("0::/\n", {"sys/fs/cgroup/memory.max": "lots\n"}),
        ("0::/\n", {"sys/fs/cgroup/memory.max": "0\n"}),
        ("0::/\n", {"sys/fs/cgroup/memory.max": "-1\n"}),
        ("0::/\n", {"sys/fs/cgroup/memory.max": str(1 << 63)}),
        ("5:cpu:/x\n", {"sys/fs/cgroup/memory/memory.limit_in_bytes": str(MiB)}),
        # a cgroup outside this namespace's view: the root is the only one that is ours
        ("0::/../../elsewhere\n", {"sys/fs/cgroup/memory.max": "max"}),
    ],
)
def test_no_limit_to_read(tmp_path: Path, cgroup: str, files: dict[str, str]) -> None:
    assert cgroup_memory_limit(fake_root(tmp_path, cgroup, files)) is None


def test_no_proc_at_all(tmp_path: Path) -> None:
    assert cgroup_memory_limit(tmp_path) is None


def test_child_memory_is_the_smallest_of_cap_machine_and_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = {"SC_PHYS_PAGES": (16 << 30) // 4096, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(workbook.os, "sysconf", pages.__getitem__)
    assert child_memory(tmp_path) == CHILD_MEMORY  # a big machine, no cgroup

    root = fake_root(tmp_path, "0::/\n", {"sys/fs/cgroup/memory.max": f"{256 * MiB}\n"})
    assert child_memory(root) == 256 * MiB

    pages["SC_PHYS_PAGES"] = (128 * MiB) // 4096  # a machine smaller than its container
    assert child_memory(root) == 128 * MiB
