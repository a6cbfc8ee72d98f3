"""The SLA guard on fake latencies and a fake clock: per-token normalisation, step down, step back up."""

from hat_engine.serving.guard import GuardConfig, SlaGuard
from hat_engine.serving.selection import Option

LADDER = [Option("fast", 9, 10, 20, 1, True), Option("mid", 18, 20, 25, 1, True), Option("slow", 36, 40, 28, 1, True)]
CFG = GuardConfig(window_s=10.0, min_samples=5, sustain_s=3.0, recover_s=6.0, headroom=0.8, min_tokens=8)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def feed(guard: SlaGuard, clock: Clock, entry_id: str, latency_ms: float, seconds: float, tokens: int = 30):
    """One request every 0.5 s for `seconds`; returns the switches made."""
    switches = []
    for _ in range(int(seconds / 0.5)):
        clock.t += 0.5
        obs = guard.observe(entry_id, latency_ms, tokens)
        if obs.switch:
            switches.append(obs.switch)
    return switches


def test_normalisation_per_token_with_a_floor():
    guard = SlaGuard(50.0, LADDER, reference_tokens=30, config=CFG)
    assert guard.normalise(100.0, 60) == 50.0  # a long output is not a slow model
    assert guard.normalise(10.0, 2) == 10.0 * 30 / 8  # very short outputs: floored at min_tokens
    obs = guard.observe("slow", 100.0, 60)
    assert not obs.violation and obs.switch is None
    assert guard.observe("slow", 120.0, 60).violation


def test_sustained_breach_steps_down_and_headroom_steps_back_up():
    clock = Clock()
    guard = SlaGuard(50.0, LADDER, 30, CFG, clock)
    assert guard.active.entry_id == "slow"
    assert feed(guard, clock, "slow", 45.0, 10) == []  # within the SLA: stays
    assert feed(guard, clock, "slow", 80.0, 2) == []  # a short burst is not sustained
    switches = feed(guard, clock, "slow", 80.0, 8)
    assert [(s.from_id, s.to_id, s.direction) for s in switches] == [("slow", "mid", "down")]
    assert guard.active.entry_id == "mid"
    # mid at 30 ms live projects slow at 60 ms > 0.8 * 50: no step up however long.
    assert feed(guard, clock, "mid", 30.0, 20) == []
    # Load drops: mid at 18 ms projects slow at 36 ms <= 40 ms; sustained for recover_s -> back up.
    switches = feed(guard, clock, "mid", 18.0, 20)  # the 30 ms samples age out first
    assert [(s.to_id, s.direction) for s in switches] == [("slow", "up")]
    assert guard.active.entry_id == "slow" and len(guard.switches) == 2


def test_never_above_the_startup_choice_nor_below_the_fastest():
    clock = Clock()
    guard = SlaGuard(50.0, LADDER[:2], 30, CFG, clock)  # startup chose "mid"
    assert feed(guard, clock, "mid", 5.0, 30) == []
    feed(guard, clock, "mid", 500.0, 10)
    assert guard.active.entry_id == "fast"
    assert feed(guard, clock, "fast", 500.0, 20) == []  # nothing faster left


def test_other_models_and_no_sla_never_switch():
    clock = Clock()
    guard = SlaGuard(50.0, LADDER, 30, CFG, clock)
    assert feed(guard, clock, "fast", 500.0, 20) == []  # a per-request budget's entry does not move the default
    assert guard.active.entry_id == "slow"
    unguarded = SlaGuard(None, LADDER, 30, CFG, clock)
    assert feed(unguarded, clock, "slow", 1e6, 20) == [] and not unguarded.observe("slow", 1e6, 1).violation
