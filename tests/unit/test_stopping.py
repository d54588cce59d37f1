"""Stop strings are never emitted, and partial matches are held back while streaming."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from palestra.backends.hf.stopping import StopStringMatcher


def stream(pieces: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    matcher = StopStringMatcher(stops)
    text, out = "", ""
    for piece in pieces:
        text += piece
        delta, stopped = matcher.update(text)
        out += delta
        if stopped:
            return out, True
    return out + matcher.flush(text), False


def test_stop_string_split_across_chunks_is_not_emitted() -> None:
    assert stream(["Hello wor", "ld. USE", "R: more"], ("USER:",)) == ("Hello world. ", True)


def test_partial_match_is_held_back_then_released() -> None:
    matcher = StopStringMatcher(("###",))
    assert matcher.update("abc#") == ("abc", False)
    assert matcher.update("abc##") == ("", False)
    assert matcher.update("abc##x") == ("##x", False)


def test_earliest_of_several_stops_wins() -> None:
    assert stream(["one STOP two END"], ("END", "STOP")) == ("one ", True)


@given(st.text(alphabet="ab#", max_size=30), st.lists(st.integers(1, 5), max_size=10))
def test_output_is_the_text_before_the_first_stop(text: str, cuts: list[int]) -> None:
    pieces, position = [], 0
    for cut in cuts:
        pieces.append(text[position : position + cut])
        position += cut
    pieces.append(text[position:])
    out, stopped = stream(pieces, ("##",))
    assert out == text.split("##")[0]
    assert stopped == ("##" in text)
