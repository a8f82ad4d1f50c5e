"""Init, freeze and snapshots as Lambda does them, in a real lab (issue #13, part 1)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from labtools import LabFactory, call

pytestmark = pytest.mark.integration


@pytest.fixture
def lab_factory(tmp_path):
    factory = LabFactory(tmp_path)
    yield factory
    factory.close()


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def settled_state(pid: int, state: str) -> str:
    """``pid``'s state once it is ``state`` (a signal takes effect when the process is next scheduled), or
    whatever it is after 10 s."""
    deadline = time.monotonic() + 10
    while proc_state(pid) != state and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc_state(pid)


def settled_env(lab, frozen: bool) -> dict:
    """The lab's only environment once its runtime is back in /next (frozen, when freezing)."""
    deadline = time.monotonic() + 10
    while True:
        env = lab.stats()["envs"][0]
        if env["frozen"] == frozen or time.monotonic() > deadline:
            return env
        time.sleep(0.02)


def ticks_while_idle(lab, idle_s: float) -> int:
    before = int(call(lab)[2].split()[0])
    time.sleep(idle_s)
    after = int(call(lab)[2].split()[0])
    return after - before


def test_an_idle_environment_is_frozen_and_its_threads_stop(lab_factory):
    lab = lab_factory("ticker.handler")
    assert ticks_while_idle(lab, 1.0) < 10  # a 10 ms ticker would count ~100 in a second if it ran
    env = settled_env(lab, frozen=True)
    assert env["frozen"] and settled_state(env["pid"], "T") == "T"


def test_without_freezing_the_threads_run_on(lab_factory):
    lab = lab_factory("ticker.handler", freeze=False)
    assert ticks_while_idle(lab, 1.0) > 20
    time.sleep(0.2)
    env = lab.stats()["envs"][0]
    assert not env["frozen"] and proc_state(env["pid"]) != "T"


def test_a_frozen_environment_uses_no_cpu(lab_factory):
    lab = lab_factory("ticker.handler")
    call(lab)
    pid = settled_env(lab, frozen=True)["pid"]
    assert settled_state(pid, "T") == "T"

    def cpu_ticks():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = cpu_ticks()
    time.sleep(1.0)
    assert cpu_ticks() == before


@pytest.mark.parametrize(
    "options, expected",
    [({}, "on-demand"), ({"provisioned": 1}, "provisioned-concurrency"), ({"snapshot": True}, "snap-start")],
)
def test_init_code_sees_the_initialization_type(lab_factory, options, expected):
    lab = lab_factory("ticker.handler", **options)
    _, seen_at_init, seen_now = call(lab)[2].decode().split()
    assert seen_at_init == expected and seen_now == expected


def test_snapstart_hooks_before_snapshot_once_after_restore_per_restore(lab_factory, tmp_path):
    hooks = tmp_path / "hooks.log"
    lab = lab_factory("snaphooks.handler", snapshot=True, env={"HOOKS_LOG": str(hooks)})
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: call(lab, "/"), range(2)))
    env_pids = {r[2].split()[0].decode() for r in results}
    lines = [line.split() for line in hooks.read_text().splitlines()]
    befores = [pid for what, pid in lines if what == "before"]
    afters = [pid for what, pid in lines if what == "after"]
    assert len(env_pids) == 2 and befores == [str(lab.pids()[-1])]  # once, in the template ("publish")
    assert sorted(afters) == sorted(env_pids)  # once per restored environment


def test_the_snapshot_template_is_frozen_between_forks(lab_factory):
    """A snapshot does not run: the template's init thread is stopped except while it forks."""
    lab = lab_factory("ticker.handler", snapshot=True)
    template = lab.pids()[-1]
    assert settled_state(template, "T") == "T"
    call(lab)  # a fork: the template runs for a moment, then stops again
    assert settled_state(template, "T") == "T"

    def cpu_ticks():
        fields = Path(f"/proc/{template}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = cpu_ticks()
    time.sleep(1.0)
    assert cpu_ticks() == before
