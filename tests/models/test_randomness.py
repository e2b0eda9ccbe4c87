"""Named random streams (models.randomness): deterministic keys, one generator per key, and no correlation
between the toy data source's draws and the training loop's noise, times and CFG drop mask."""

from __future__ import annotations

import itertools

import torch

from models.objectives import make_objective
from models.randomness import Stream, Streams, stream_seed
from models.toy import STD, EightGaussiansSource, eight_centers
from models.training.loop import step_randomness

BATCH, STEPS = 4096, 8


def test_a_key_always_gives_the_same_seed_and_other_keys_other_seeds() -> None:
    """Same (seed, name, index) → same seed; changing any part, or the number of indices, changes it."""
    assert stream_seed(3, "noise", 7) == stream_seed(3, Stream.NOISE, 7) == Streams(3).seed_of(Stream.NOISE, 7)
    keys = [(3, "noise", (7,)), (4, "noise", (7,)), (3, "time", (7,)), (3, "noise", (8,)), (3, "noise", ()),
            (3, "noise", (7, 0)), (3, "noise", (0, 7))]
    assert len({stream_seed(s, n, *i) for s, n, i in keys}) == len(keys)
    a = torch.rand(5, generator=Streams(3).generator(Stream.TIME, 2))
    assert torch.equal(a, torch.rand(5, generator=Streams(3).generator(Stream.TIME, 2)))


def test_every_stream_and_step_gets_its_own_generator() -> None:
    """Over 2 seeds × every core stream × 2000 steps the 64-bit seeds are all distinct; torch's CPU
    generator keeps their low 32 bits, which coincide only by chance (birthday bound: 32,000²/2³³ ≈ 0.12
    pairs expected; one here). The old ``seed·1_000_003 + step`` gave every stream of a seed the same one."""
    keys = [(seed, name, step) for seed in (0, 1) for name in Stream for step in range(2000)]
    full = [stream_seed(*key) for key in keys]
    assert len(set(full)) == len(full)
    low = {value & 0xFFFFFFFF for value in full}
    assert len(full) - len(low) <= 2


def _draws(data_seed: int, loop_seed: int) -> list[dict[str, torch.Tensor]]:
    """Per step, the toy source's labels and within-mode noise, and the loop's noise, times and drop mask,
    exactly as :func:`models.training.train` draws them (``BATCH`` values each), plus the loop noise of the
    next step."""
    source = EightGaussiansSource(batch_size=BATCH, seed=data_seed, conditional=True)
    objective, streams = make_objective("fm"), Streams(loop_seed)
    steps = []
    for step in range(STEPS):
        batch = source.batch(step)
        labels = batch.condition.argmax(dim=1)
        within = (batch.x1 - eight_centers()[labels]) / STD
        t, noise, drop = step_randomness(streams, step, objective, batch_size=BATCH, shape=(2,),
                                         dtype=torch.float32, cond_dropout=0.5)
        _, later, _ = step_randomness(streams, step + 1, objective, batch_size=BATCH, shape=(2,),
                                      dtype=torch.float32)
        assert drop is not None
        draws = {"data labels": labels.float(), "data noise 0": within[:, 0], "data noise 1": within[:, 1],
                 "loop noise 0": noise[:, 0], "loop noise 1": noise[:, 1], "loop t": t, "loop drop": drop.float(),
                 "loop noise 0, next step": later[:, 0]}
        steps.append({name: value.double() for name, value in draws.items()})
    return steps


def _worst_correlation(steps: list[dict[str, torch.Tensor]]) -> tuple[float, str, str]:
    """The largest |Pearson r| between two draws over all steps, and the two draws' names."""
    draws = {name: torch.cat([step[name] for step in steps]) for name in steps[0]}
    worst = (0.0, "", "")
    for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
        worst = max(worst, (abs(float(torch.corrcoef(torch.stack([x, y]))[0, 1])), a, b))
    return worst


def _lagged_z(x: torch.Tensor, y: torch.Tensor, *, min_overlap: int) -> float:
    """The largest |z| of the correlation of ``x[i + L]`` with ``y[i]`` over every lag ``L`` that overlaps at
    least ``min_overlap`` values: ``z = Σ x̂ŷ / √overlap`` of the standardised draws, ~N(0, 1) for
    independent ones, ≈ √overlap where one sequence repeats the other shifted (a generator shared at an
    offset, which Pearson at lag 0 does not see)."""
    x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    size = 1 << (len(x) + len(y)).bit_length()
    corr = lambda u, v: torch.fft.irfft(torch.fft.rfft(u, size) * torch.fft.rfft(v, size).conj(), size)
    overlap = corr(torch.ones_like(x), torch.ones_like(y)).round()
    ok = overlap >= min_overlap
    return float((corr(x, y)[ok] / overlap[ok].sqrt()).abs().max())


def test_no_two_streams_of_the_toy_and_the_loop_are_correlated() -> None:
    """|Pearson r| < 0.05 between every pair of draws (``STEPS·BATCH`` = 32,768 values each; chance alone
    gives ~0.006), with the data source and the loop on the same seed, as the toy run has them."""
    r, a, b = _worst_correlation(_draws(data_seed=0, loop_seed=0))
    assert r < 0.05, f"{a} and {b} correlate: |r| = {r:.3f}"


def test_no_stream_repeats_another_at_an_offset() -> None:
    """Within each step no draw (flattened, as the generator emitted it) repeats another at any offset: the
    lagged correlation stays below z = 7 (independent draws: ~5 over the ~10⁶ lags and pairs tested;
    a shared generator at an offset: z ≈ √overlap ≥ 32)."""
    for step in _draws(data_seed=0, loop_seed=0):
        flat = {"data labels": step["data labels"], "loop t": step["loop t"], "loop drop": step["loop drop"],
                "data noise": torch.stack([step["data noise 0"], step["data noise 1"]], 1).flatten(),
                "loop noise": torch.stack([step["loop noise 0"], step["loop noise 1"]], 1).flatten()}
        for (a, x), (b, y) in itertools.combinations(flat.items(), 2):
            z = _lagged_z(x, y, min_overlap=BATCH // 4)
            assert z < 7, f"{a} and {b} share random numbers at an offset: z = {z:.1f}"


def test_the_correlation_check_catches_the_old_shared_seed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The old seeding fails the check: the source, and the loop's t → x0 → drop mask in turn, each from a
    generator seeded ``seed·1_000_003 + step`` (the loop's x0 was then the source's within-mode noise)."""
    loop: dict[tuple[int, int], torch.Generator] = {}

    def old(self: Streams, stream: str, step: int, device: object = None) -> torch.Generator:
        if stream in (Stream.NOISE, Stream.COND_DROP):
            return loop[self.seed, step]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        if stream == Stream.TIME:
            loop[self.seed, step] = gen
        return gen

    monkeypatch.setattr(Streams, "generator", old)
    r, a, b = _worst_correlation(_draws(data_seed=0, loop_seed=0))
    assert r > 0.99 and {a, b} == {"data noise 0", "loop noise 0"}
