"""DataStream: epochs without replacement, exact resume from state_dict, minimal generator use."""

from __future__ import annotations

import io

import pytest
import torch

from pfgmctl.data.stream import DataStream
from pfgmctl.errors import CheckpointError

N = 10


def _data() -> torch.Tensor:
    return torch.arange(N, dtype=torch.float32)[:, None] * torch.ones(1, 3)  # row i is i, i, i


def _ids(rows: torch.Tensor) -> list[int]:
    return rows[:, 0].long().tolist()


def _stream(seed: int = 0) -> DataStream:
    return DataStream(_data(), torch.Generator().manual_seed(seed))


def test_rows_have_item_shape() -> None:
    s = _stream()
    assert s.next(4).shape == (4, 3)
    assert s.next(0).shape == (0, 3)


def test_no_replacement_within_epoch() -> None:
    s = _stream()
    drawn = [i for _ in range(5) for i in _ids(s.next(4))]  # 20 rows = two epochs in chunks of 4
    assert sorted(drawn[:N]) == list(range(N))
    assert sorted(drawn[N:]) == list(range(N))
    assert drawn[:N] != drawn[N:]  # a fresh permutation per epoch
    assert s.epoch == 2


def test_k_larger_than_n_spans_epochs() -> None:
    s = _stream(1)
    ids = _ids(s.next(3 * N + 4))
    for e in range(3):
        assert sorted(ids[e * N : (e + 1) * N]) == list(range(N))
    assert len(set(ids[3 * N :])) == 4
    assert s.epoch == 4


def test_chunking_does_not_change_the_sequence() -> None:
    a, b = _stream(2), _stream(2)
    big = _ids(a.next(37))
    small = [i for k in (1, 5, 10, 3, 18) for i in _ids(b.next(k))]
    assert big == small


def test_seeds() -> None:
    assert _ids(_stream(3).next(25)) == _ids(_stream(3).next(25))
    assert _ids(_stream(3).next(25)) != _ids(_stream(4).next(25))


def test_generator_used_only_at_epoch_start() -> None:
    gen = torch.Generator().manual_seed(5)
    s = DataStream(_data(), gen)
    ref = torch.Generator().manual_seed(5)
    assert torch.equal(gen.get_state(), ref.get_state())  # constructing draws nothing
    first = s.next(3)
    expected = torch.randperm(N, generator=ref)
    assert _ids(first) == expected[:3].tolist()
    assert torch.equal(gen.get_state(), ref.get_state())
    s.next(N - 3)  # finishes the epoch: still no new draw
    assert torch.equal(gen.get_state(), ref.get_state())
    s.next(1)
    torch.randperm(N, generator=ref)
    assert torch.equal(gen.get_state(), ref.get_state())


@pytest.mark.parametrize("first", [0, 3, N, N + 1, 2 * N - 1, 25])
def test_resume_is_exact(first: int) -> None:
    s = _stream(7)
    s.next(first)
    state = s.state_dict()
    b, c = _ids(s.next(6)), _ids(s.next(23))
    restored = DataStream(_data(), torch.Generator().manual_seed(999))
    restored.load_state_dict(state)
    assert _ids(restored.next(6)) == b
    assert _ids(restored.next(23)) == c
    assert torch.equal(restored.gen.get_state(), s.gen.get_state())
    assert restored.epoch == s.epoch


def test_state_is_plain_and_survives_weights_only_save() -> None:
    s = _stream(8)
    s.next(13)
    state = s.state_dict()
    assert state["gen_state"].dtype == torch.uint8
    assert {k: type(v) for k, v in state.items() if k != "gen_state"} == {
        "pos": int,
        "epoch": int,
        "n": int,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    expected = _ids(s.next(12))
    restored = _stream(0)
    restored.load_state_dict(loaded)
    assert _ids(restored.next(12)) == expected


def test_state_is_a_snapshot() -> None:
    s = _stream(9)
    s.next(4)
    state = s.state_dict()
    saved = state["gen_state"].clone()
    s.next(30)
    assert torch.equal(state["gen_state"], saved)


def test_resume_with_other_data_size_fails() -> None:
    s = _stream()
    s.next(3)
    other = DataStream(torch.zeros(N + 1, 3), torch.Generator().manual_seed(0))
    with pytest.raises(CheckpointError, match="rows"):
        other.load_state_dict(s.state_dict())


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="row"):
        DataStream(torch.zeros(0, 2), torch.Generator())
    with pytest.raises(ValueError, match="k"):
        _stream().next(-1)
