"""A public battle release, as LMSYS published Chatbot Arena's: `palestra arena release
STORE OUT` writes `OUT/battles.json` in FastChat's cleaned-battle format with
conversations (the fields of the 2023 `chatbot_arena_conversations` and 2024
`arena-human-preference` releases) and `OUT/DATASHEET.md`, which counts everything
removed or changed and why.

What a release keeps: anonymous battles only, after the arena's own cleaning (duplicates,
identity leaks, errored answers, anomalous voters), without battles that contain a
blocked word, at most `--max-per-pair` battles per model pair (a seeded sample). What it
changes: voters are re-keyed (`arena_user_N`, a seeded shuffle, unlinkable to the store's
hashes); personal data in every message is replaced by its type (`<EMAIL_ADDRESS>`,
`<PHONE_NUMBER>`, ...); the moderator's verdict, when one is given, becomes a tag.

Personal data is found by Microsoft Presidio (`palestra[release]`): it is maintained,
its pattern recognizers (e-mail, phone numbers through Google's libphonenumber, credit
cards with their checksum, IBAN, IP addresses, US SSN) need no model and run offline,
and its NER path finds names and places when a spaCy model is installed (`--ner-model
en_core_web_lg`). scrubadub, the other candidate, has had no release since 2023 and pins
an old TextBlob. Street addresses get a pattern of our own (Presidio has none).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palestra.arena.battles import Battle
from palestra.arena.settings import CleaningOptions
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

PATTERN_ENTITIES = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
    "STREET_ADDRESS",
)  # fmt: skip
NER_ENTITIES = ("PERSON", "LOCATION")
STREET = (
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Square|Sq)\b\.?"
)


class ReleaseOptions(Settings):
    """What goes into a public battle release."""

    source: str = option(..., "The arena store (SQLite file or URL).", positional=True)
    out: Path = option(..., "Folder for battles.json and DATASHEET.md.", positional=True)
    max_per_pair: int | None = option(
        None, "Most battles released per model pair (a seeded sample); none: all."
    )
    blocked_words: Path | None = option(
        None, "Drop battles containing any of these words (one per line, # comments)."
    )
    moderation: str | None = option(
        None, "Tag each battle with this moderator's verdict: 'keyword' or module:factory."
    )
    moderation_words: Path | None = option(None, "The word list of --moderation keyword.")
    ner_model: str | None = option(
        None, "An installed spaCy model to find names and places too (e.g. en_core_web_lg)."
    )
    pii_threshold: float = option(0.4, "Presidio score from which a finding is replaced.")
    seed: int = option(0, "Seed of the per-pair sample and of the voters' new ids.")


class Scrubber:
    """Personal data out of text, through Presidio (loaded once)."""

    def __init__(self, ner_model: str | None, threshold: float):
        try:
            import spacy
            import tldextract.tldextract
            from presidio_analyzer import (
                AnalyzerEngine,
                Pattern,
                PatternRecognizer,
                RecognizerRegistry,
            )
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
            from presidio_anonymizer import AnonymizerEngine
        except ImportError:
            raise InvalidRequestError(
                "a release scrubs personal data with Presidio: pip install 'palestra[release]'"
            ) from None
        # Presidio validates e-mail domains with tldextract, whose default extractor
        # downloads the public-suffix list; the list bundled with tldextract is enough.
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
        self.names = ner_model is not None
        if ner_model is None:  # patterns only: a blank pipeline, nothing to download
            model = tempfile.mkdtemp(prefix="palestra-spacy-")
            spacy.blank("en").to_disk(model)
        else:
            if not spacy.util.is_package(ner_model) and not Path(ner_model).is_dir():
                raise InvalidRequestError(
                    f"spaCy model {ner_model!r} is not installed "
                    f"(python -m spacy download {ner_model})"
                )
            model = ner_model
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        engine.load()
        registry = RecognizerRegistry()
        registry.load_predefined_recognizers(nlp_engine=engine)
        registry.add_recognizer(
            PatternRecognizer("STREET_ADDRESS", patterns=[Pattern("street", STREET, 0.6)])
        )
        self.entities = list(PATTERN_ENTITIES) + (list(NER_ENTITIES) if self.names else [])
        self.analyzer = AnalyzerEngine(
            nlp_engine=engine, registry=registry, supported_languages=["en"]
        )
        self.anonymizer = AnonymizerEngine()
        self.threshold = threshold

    def scrub(self, text: str, found: Counter[str]) -> str:
        """The text with each finding replaced by `<TYPE>`; `found` counts them."""
        if not text.strip():
            return text
        results = self.analyzer.analyze(
            text=text, language="en", entities=self.entities, score_threshold=self.threshold
        )
        if not results:
            return text
        kept = self.anonymizer.anonymize(text=text, analyzer_results=results)  # type: ignore[arg-type]
        for item in kept.items:
            found[item.entity_type] += 1
        return str(kept.text)


@dataclass
class ReleaseReport:
    read: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # reason: battles
    replaced: Counter[str] = field(default_factory=Counter)  # entity type: occurrences
    tagged: int = 0  # battles the moderator flagged
    released: int = 0
    voters: int = 0
    models: list[str] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0
    names_checked: bool = False


def release(options: ReleaseOptions, cleaning: CleaningOptions | None = None) -> ReleaseReport:
    """Write the release; the report says what was removed and changed."""
    from palestra.arena.cleaning import clean
    from palestra.arena.pipeline import open_store
    from palestra.webui.safety import KeywordModerator, load_moderator

    cleaning = (cleaning or CleaningOptions()).model_copy(update={"anony_only": True})
    battles = open_store(options.source).battles()
    report = ReleaseReport(read=len(battles))
    kept, reports = clean(battles, cleaning)
    report.removed = {r.name: r.removed for r in reports if r.removed}
    if options.blocked_words:
        blocked = KeywordModerator.from_file(options.blocked_words)
        before = len(kept)
        kept = [b for b in kept if not blocked.check(_text(b)).flagged]
        report.removed["a blocked word"] = before - len(kept)
    if options.max_per_pair:
        kept = _cap_pairs(kept, options.max_per_pair, options.seed, report)
    moderator = (
        load_moderator(options.moderation, str(options.moderation_words or "") or None)
        if options.moderation
        else None
    )
    scrubber = Scrubber(options.ner_model, options.pii_threshold)
    report.names_checked = scrubber.names
    voters = sorted({b.judge for b in kept})
    random.Random(options.seed).shuffle(voters)
    new_id = {judge: f"arena_user_{n}" for n, judge in enumerate(voters)}
    records = []
    for battle in sorted(kept, key=lambda b: b.tstamp):
        record = _record(battle, new_id[battle.judge], scrubber, report.replaced)
        if moderator is not None:
            verdict = moderator.check(_text(battle))
            record["moderation"] = {"flagged": verdict.flagged, "reason": verdict.reason}
            report.tagged += verdict.flagged
        records.append(record)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "battles.json").write_text(
        json.dumps(records, ensure_ascii=False, indent=1) + "\n", "utf-8"
    )
    report.released, report.voters = len(records), len(voters)
    report.models = sorted({b.model_a for b in kept} | {b.model_b for b in kept})
    if kept:
        report.first, report.last = min(b.tstamp for b in kept), max(b.tstamp for b in kept)
    (options.out / "DATASHEET.md").write_text(datasheet(report, options, cleaning), "utf-8")
    return report


def _text(battle: Battle) -> str:
    return "\n".join(m["content"] for m in battle.conversation_a + battle.conversation_b)


def _cap_pairs(battles: list[Battle], cap: int, seed: int, report: ReleaseReport) -> list[Battle]:
    by_pair: dict[tuple[str, str], list[Battle]] = defaultdict(list)
    for battle in battles:
        by_pair[tuple(sorted((battle.model_a, battle.model_b)))].append(battle)  # type: ignore[index]
    rng = random.Random(seed)
    kept = []
    for pair in sorted(by_pair):
        group = by_pair[pair]
        kept += group if len(group) <= cap else rng.sample(group, cap)
    report.removed[f"over {cap} battles for their pair"] = len(battles) - len(kept)
    return kept


def _record(battle: Battle, judge: str, scrubber: Scrubber, found: Counter[str]) -> dict[str, Any]:
    """FastChat's released battle record, de-identified."""
    from palestra.arena.ratings.style import style_counts

    conversations = [
        [{"role": m["role"], "content": scrubber.scrub(m["content"], found)} for m in side]
        for side in (battle.conversation_a, battle.conversation_b)
    ]
    metadata: dict[str, Any] = {}
    for side, conversation in zip("ab", conversations, strict=True):
        answers = [m["content"] for m in conversation if m["role"] == "assistant"]
        words, headers, lists, bold = style_counts(answers)
        metadata |= {
            f"sum_assistant_{side}_tokens": int(words),
            f"header_count_{side}": {"all": int(headers)},
            f"list_count_{side}": {"all": int(lists)},
            f"bold_count_{side}": {"all": int(bold)},
        }
    return {
        "question_id": uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(conversations[0][:1])).hex,
        "model_a": battle.model_a,
        "model_b": battle.model_b,
        "winner": battle.winner,
        "judge": judge,
        "conversation_a": conversations[0],
        "conversation_b": conversations[1],
        "turn": battle.turn,
        "anony": True,
        "language": battle.language or "unknown",
        "tstamp": battle.tstamp,
        "conv_metadata": metadata,
        "category_tag": list(battle.extra.get("categories") or []),
    }


def datasheet(report: ReleaseReport, options: ReleaseOptions, cleaning: CleaningOptions) -> str:
    """The release's datasheet: provenance, what was removed and changed, the fields."""

    def day(stamp: float) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(stamp)) if stamp else "-"

    removed = "\n".join(f"| {reason} | {n} |" for reason, n in report.removed.items()) or (
        "| nothing | 0 |"
    )
    replaced = (
        "\n".join(f"| `<{kind}>` | {n} |" for kind, n in sorted(report.replaced.items()))
        or "| nothing found | 0 |"
    )
    names = (
        f"checked with the spaCy model {options.ner_model} (PERSON, LOCATION)"
        if report.names_checked
        else "not checked: no spaCy NER model was given (--ner-model); names and places may remain"
    )
    moderation = (
        f"tagged by {options.moderation}: {report.tagged} battles flagged (`moderation`)"
        if options.moderation
        else "not tagged (no --moderation)"
    )
    return f"""# Datasheet: Palestra arena battle release

- Made: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} by `palestra arena release`
- Battles: {report.released} released of {report.read} stored battle votes
- Votes cast from {day(report.first)} to {day(report.last)}
- Voters: {report.voters}, re-keyed as `arena_user_N` (a shuffle seeded by --seed;
  not linkable to the store's salted hashes or to addresses)
- Models: {len(report.models)} ({", ".join(report.models)})
- Cleaning: {cleaning.describe()}
- Moderation: {moderation}
- Names and places: {names}

## Removed

| reason | battles |
|---|---:|
{removed}

## Personal data replaced (Presidio, score >= {options.pii_threshold})

| replaced by | occurrences |
|---|---:|
{replaced}

## Fields (battles.json, a JSON list: FastChat's released battle format)

question_id, model_a, model_b, winner (model_a, model_b, tie, tie (bothbad)), judge,
conversation_a, conversation_b (lists of {{role, content}}), turn, anony, language, tstamp,
conv_metadata (answer words and markdown counts per side, for style control),
category_tag{", moderation {flagged, reason}" if options.moderation else ""}.

`palestra arena rate battles.json` rates it.
"""
