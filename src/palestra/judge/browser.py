"""The judgment browser (`palestra judge browse`): pick a question and two models, read
the question, both models' answers turn by turn, and the judge's verdicts side by side
(single grades for each model; both orders of the pairwise judgment of the pair).

`BenchView` holds everything read from disk and renders one page's markdown; it knows
nothing about Gradio, so it is tested on its own. `build_browser` wires it to a Gradio
Blocks page. Answers and judgments are shown as markdown with HTML escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.core.errors import InvalidRequestError
from palestra.judge.bench import Answer, Question, load_answers, load_questions
from palestra.judge.results import load_judgments


def _inert(text: str) -> str:
    return html.escape(text, quote=False)


@dataclass
class BenchView:
    questions: dict[str, Question]
    answers: dict[str, dict[int | str, Answer]]
    single: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, bench: Path, out: Path, judge: str | None) -> BenchView:
        questions = {str(q.question_id): q for q in load_questions(bench / "question.jsonl")}
        answers = load_answers(bench, out)
        if not answers:
            raise InvalidRequestError(f"no model answers under {bench} or {out}")
        view = cls(questions, answers)
        folder = out / "model_judgment"
        if judge:
            single, pair = folder / f"{judge}_single.jsonl", folder / f"{judge}_pair.jsonl"
            view.single = load_judgments(single) if single.is_file() else []
            view.pairs = load_judgments(pair) if pair.is_file() else []
        return view

    @property
    def models(self) -> list[str]:
        return sorted(self.answers)

    def question_choices(self) -> list[str]:
        return [f"{qid}: [{q.category}] {q.turns[0][:60]}" for qid, q in self.questions.items()]

    def question_markdown(self, qid: str) -> str:
        question = self.questions[qid]
        parts = [f"### Question {qid} ({question.category})"]
        parts += [f"**Turn {i}.** {_inert(t)}" for i, t in enumerate(question.turns, 1)]
        if question.reference:
            parts.append("**Reference:** " + _inert(" / ".join(question.reference)))
        return "\n\n".join(parts)

    def answer_markdown(self, qid: str, model: str) -> str:
        answer = self.answers.get(model, {}).get(self._key(qid))
        if answer is None:
            return f"*{model} has no answer to question {qid}.*"
        turns = self.questions[qid].turns
        parts = [f"#### {model}"]
        for i, reply in enumerate(answer.turns, 1):
            asked = turns[i - 1] if i <= len(turns) else ""
            parts.append(f"**User (turn {i}):** {_inert(asked)}\n\n**{model}:**\n\n{_inert(reply)}")
        return "\n\n".join(parts)

    def _key(self, qid: str) -> int | str:
        return self.questions[qid].question_id

    def single_markdown(self, qid: str, model: str) -> str:
        rows = [r for r in self.single if str(r["question_id"]) == qid and r["model"] == model]
        if not rows:
            return f"*No single-answer judgment of {model}.*"
        parts = []
        for r in sorted(rows, key=lambda r: r["turn"]):
            score = "unparsable" if r["score"] == -1 else r["score"]
            parts.append(
                f"**Turn {r['turn']}: score {score}** ({r['judge'][1]})\n\n{_inert(r['judgment'])}"
            )
        return "\n\n".join(parts)

    def pair_markdown(self, qid: str, model_a: str, model_b: str) -> str:
        wanted = {model_a, model_b}
        rows = [
            r
            for r in self.pairs
            if str(r["question_id"]) == qid and {r["model_1"], r["model_2"]} == wanted
        ]
        if not rows:
            return f"*No pairwise judgment of {model_a} and {model_b} on question {qid}.*"
        parts = []
        for r in sorted(rows, key=lambda r: r["turn"]):
            consistent = r["g1_winner"] == r["g2_winner"]
            outcome = r["g1_winner"] if consistent else "tie (the verdict flipped with the order)"
            parts.append(f"**Turn {r['turn']}: {outcome}**")
            parts.append(
                f"*Game 1 ({r['model_1']} as A): {r['g1_winner']}*\n\n{_inert(r['g1_judgment'])}"
            )
            parts.append(
                f"*Game 2 ({r['model_2']} as A): {r['g2_winner']}*\n\n{_inert(r['g2_judgment'])}"
            )
        return "\n\n".join(parts)

    def page(self, choice: str, model_a: str, model_b: str) -> tuple[str, str, str, str, str, str]:
        """(question, answer A, answer B, single A, single B, pairwise) for one selection."""
        qid = choice.split(":", 1)[0]
        if qid not in self.questions:
            raise InvalidRequestError(f"no question {qid!r}")
        return (
            self.question_markdown(qid),
            self.answer_markdown(qid, model_a),
            self.answer_markdown(qid, model_b),
            self.single_markdown(qid, model_a),
            self.single_markdown(qid, model_b),
            self.pair_markdown(qid, model_a, model_b),
        )


def build_browser(view: BenchView) -> Any:
    import gradio as gr

    questions = view.question_choices()
    models = view.models
    second = models[1] if len(models) > 1 else models[0]
    with gr.Blocks(title="Palestra judgment browser") as page:
        gr.Markdown("## Palestra judgment browser")
        with gr.Row():
            question = gr.Dropdown(questions, value=questions[0], label="Question", scale=3)
            model_a = gr.Dropdown(models, value=models[0], label="Model A")
            model_b = gr.Dropdown(models, value=second, label="Model B")
        question_text = gr.Markdown(elem_id="question")
        with gr.Row():
            answer_a = gr.Markdown(elem_id="answer-a")
            answer_b = gr.Markdown(elem_id="answer-b")
        gr.Markdown("### Single-answer judgments")
        with gr.Row():
            single_a = gr.Markdown(elem_id="single-a")
            single_b = gr.Markdown(elem_id="single-b")
        gr.Markdown("### Pairwise judgment")
        pairwise = gr.Markdown(elem_id="pairwise")
        inputs = [question, model_a, model_b]
        outputs = [question_text, answer_a, answer_b, single_a, single_b, pairwise]
        for widget in inputs:
            widget.change(view.page, inputs, outputs)
        page.load(view.page, inputs, outputs)
    return page
