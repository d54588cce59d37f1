"""`palestra judge` from the command line: a local model answering in-process, a local
copy as the download source, and one-line errors for what users get wrong."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.cluster import CLI, free_port
from tests.shared_data import SHARED_DATA, needs_shared_data


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@needs_shared_data
def test_download_from_local_copy_then_answer_with_a_local_model(tmp_path: Path) -> None:
    assert SHARED_DATA is not None
    data = tmp_path / "data"
    result = run("judge", "download", "--from", str(SHARED_DATA), "--to", str(data))
    assert result.returncode == 0, result.stderr
    bench = data / "mt_bench"
    assert (bench / "question.jsonl").read_bytes() == (
        SHARED_DATA / "mt_bench" / "question.jsonl"
    ).read_bytes()
    assert (data / "judge_prompts.jsonl").is_file()
    assert (bench / "reference_answer" / "gpt-4.jsonl").is_file()

    out = tmp_path / "results"
    result = run(
        "judge", "answer", "--model", "tiny-local", "--model-path", "palestra-tiny",
        "--bench", str(bench), "--out", str(out), "--first-n", "2", "--max-tokens", "24",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 questions answered" in result.stdout
    lines = (out / "model_answer" / "tiny-local.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["question_id"] for r in records] == [81, 82]
    assert all(len(r["choices"][0]["turns"]) == 2 for r in records)
    assert not (bench / "model_answer" / "tiny-local.jsonl").exists()  # the bench is read-only

    # every model option of `chat` and `worker`: template, device, dtype, ...
    templated = run(
        "judge", "answer", "--model", "tiny-vicuna", "--model-path", "palestra-tiny",
        "--conv-template", "vicuna_v1.1", "--device", "cpu", "--dtype", "float32",
        "--bench", str(bench), "--out", str(out), "--first-n", "1", "--max-tokens", "8",
    )  # fmt: skip
    assert templated.returncode == 0, templated.stderr
    assert (out / "model_answer" / "tiny-vicuna.jsonl").is_file()
    foreign = run(
        "judge", "answer", "--model", "x", "--model-path", "palestra-tiny", "--parallel", "2",
        "--bench", str(bench), "--out", str(out), "--first-n", "1",
    )  # fmt: skip
    assert foreign.returncode == 2
    assert "--parallel is an option of the llamacpp backend, not of 'hf'" in foreign.stderr
    unknown = run(
        "judge", "answer", "--model", "x", "--model-path", "palestra-tiny",
        "--conv-template", "no-such-template", "--bench", str(bench), "--first-n", "1",
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown chat template 'no-such-template'" in unknown.stderr


def test_one_line_errors(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    missing = run(
        "judge", "answer", "--model", "m", "--api-base", "http://x", "--bench", str(bench)
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("palestra: error: question file")
    assert "palestra judge download" in missing.stderr and "Traceback" not in missing.stderr

    bench.mkdir()
    (bench / "question.jsonl").write_text(
        '{"question_id": 1, "category": "writing", "turns": ["hi"]}\n'
    )
    nowhere = run("judge", "answer", "--model", "m", "--bench", str(bench))
    assert nowhere.returncode == 2 and "say where the model answers" in nowhere.stderr

    (bench / "question.jsonl").write_text('{"question_id": 1, "turns": ["hi"]}\n{oops\n')
    broken = run("judge", "answer", "--model", "m", "--api-base", "http://x", "--bench", str(bench))
    assert broken.returncode == 2 and "question.jsonl:2: not JSON" in broken.stderr

    (bench / "question.jsonl").write_text(
        '{"question_id": 1, "category": "writing", "turns": ["hi"]}\n'
    )
    (tmp_path / "judge_prompts.jsonl").write_text("")
    no_answers = run("judge", "grade", "--bench", str(bench), "--judge-api-base", "http://x")
    assert no_answers.returncode == 2 and "no answered models" in no_answers.stderr

    answers = bench / "model_answer"
    answers.mkdir()
    (answers / "m.jsonl").write_text(
        '{"question_id": 1, "model_id": "m", "choices": [{"index": 0, "turns": ["hello"]}]}\n'
    )
    (tmp_path / "judge_prompts.jsonl").write_text(
        json.dumps({"name": "single-v1", "type": "single", "system_prompt": "",
                    "prompt_template": "{question} {answer}", "output_format": "[[rating]]"})
        + "\n"
    )  # fmt: skip
    dead_judge = f"http://127.0.0.1:{free_port()}/v1"
    unreachable = run("judge", "grade", "--bench", str(bench), "--judge-api-base", dead_judge)
    assert unreachable.returncode == 2
    assert "cannot reach openai endpoint 'gpt-4'" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1

    bad_mode = run("judge", "show", "--bench", str(bench), "--mode", "pairs")
    assert bad_mode.returncode == 2 and "--mode must be one of" in bad_mode.stderr
