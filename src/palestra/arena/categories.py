"""Category labels for battles, as LMArena's category leaderboards use them, decided by
rules on what the user asked (the store keeps them with each vote's facts):

- `coding`: code blocks, or programming words and syntax;
- `math`: equations, calculations, or mathematical words;
- `creative_writing`: asks for a story, poem, song, script, or role play;
- `instruction_following`: states explicit constraints on the answer (a word or sentence
  count, a format, what to include or avoid);
- `hard_prompts`: a long, specific prompt that combines at least two demands (code, math,
  constraints, several questions): a rule-of-thumb stand-in for LMArena's seven criteria,
  which an LLM judges;
- `multi_turn`: more than one user turn;
- `long_query`: a prompt of 500 tokens or more (counted as 0.75 words per token);
- a language: `english`, `chinese`, `japanese`, `korean`, `russian`, `arabic`, `french`,
  `german`, `spanish`, `italian`, `portuguese`, or `other_language`, from the script and
  the most frequent function words.

`label` returns every category a battle belongs to (`language_of` the language alone).
A judge model can add topics (`judge_prompt`, `parse_judged`; the web UI's
`--category-judge`): its labels are stored with the vote beside the rules'.
"""

from __future__ import annotations

import re

from palestra.arena.battles import Battle

TOPICS = (
    "coding", "math", "creative_writing", "instruction_following", "hard_prompts",
    "multi_turn", "long_query",
)  # fmt: skip
LANGUAGES = (
    "english", "chinese", "japanese", "korean", "russian", "arabic", "french", "german",
    "spanish", "italian", "portuguese", "other_language",
)  # fmt: skip
CATEGORIES = TOPICS + LANGUAGES

CODE = re.compile(
    r"```|\b(?:def|class|import|return|function|const|let|var|public|static|void|#include|"
    r"SELECT|FROM|WHERE|python|javascript|typescript|java|c\+\+|rust|golang|sql|html|css|"
    r"regex|api|bug|compile|compiler|debug|stack trace|traceback|exception|algorithm|"
    r"script|code|program|json|yaml|bash|shell|docker|git)\b|[{};]\s*$|=>|\w+\(\)",
    re.IGNORECASE | re.MULTILINE,
)
MATH = re.compile(
    r"\d\s*[-+*/^=]\s*\d|\\frac|\\int|\\sum|\b(?:solve|equation|integral|derivative|"
    r"calculate|compute|probability|prime|factorial|matrix|theorem|proof|algebra|geometry|"
    r"triangle|percent|percentage|sqrt|logarithm|sum of|how many)\b",
    re.IGNORECASE,
)
CREATIVE = re.compile(
    r"\b(?:write|compose|create|tell)\b[^.?!\n]{0,40}\b(?:story|poem|haiku|song|lyrics|"
    r"limerick|sonnet|script|screenplay|fiction|fable|tale|novel|rap|joke)\b|"
    r"\b(?:role\s?play|pretend (?:you are|to be)|imagine (?:you are|that))\b",
    re.IGNORECASE,
)
CONSTRAINT = re.compile(
    r"\b(?:in|exactly|at most|at least|no more than|fewer than|under|within)\s+"
    r"(?:\d+|one|two|three|four|five|ten)\s+(?:words?|sentences?|paragraphs?|bullet|lines?|"
    r"characters?|items?)\b|\b(?:bullet points?|numbered list|in json|as json|as a table|"
    r"in a table|markdown|all caps|lowercase|uppercase|do not (?:use|mention|include)|"
    r"don't (?:use|mention|include)|without using|must (?:include|contain|use|start|end)|"
    r"start (?:with|each)|end (?:with|each)|format)\b",
    re.IGNORECASE,
)
FUNCTION_WORDS = {
    "english": ("the", "and", "is", "are", "of", "to", "what", "you", "how", "in", "a", "for"),
    "french": ("le", "la", "les", "et", "est", "des", "une", "que", "pour", "vous"),
    "german": ("der", "die", "und", "ist", "nicht", "ein", "eine", "ich", "wie", "was"),
    "spanish": ("el", "la", "los", "y", "es", "que", "una", "por", "para", "cómo"),
    "italian": ("il", "di", "che", "è", "per", "una", "sono", "come", "della", "non"),
    "portuguese": ("o", "que", "não", "uma", "para", "com", "é", "os", "como", "você"),
}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def language_of(text: str) -> str:
    """The prompt's language, from its script, else its most frequent function words."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "other_language"

    def share(low: int, high: int) -> float:
        return sum(low <= ord(c) <= high for c in letters) / len(letters)

    if share(0x3040, 0x30FF) > 0.1:
        return "japanese"
    if share(0xAC00, 0xD7AF) > 0.3:
        return "korean"
    if share(0x4E00, 0x9FFF) > 0.3:
        return "chinese"
    if share(0x0400, 0x04FF) > 0.3:
        return "russian"
    if share(0x0600, 0x06FF) > 0.3:
        return "arabic"
    words = [w.lower() for w in WORD.findall(text)]
    scores = {
        language: sum(w in marks for w in words) for language, marks in FUNCTION_WORDS.items()
    }
    best = max(scores, key=lambda language: scores[language])
    if scores[best]:
        return best
    return "english" if share(0x41, 0x7A) > 0.9 else "other_language"  # plain ASCII letters


def label(battle: Battle) -> list[str]:
    """Every category the battle's prompts put it in (topics, then the language)."""
    prompts = [m["content"] for m in battle.conversation_a if m.get("role") == "user"]
    text = "\n".join(prompts)
    found = []
    coding, math = bool(CODE.search(text)), bool(MATH.search(text))
    constraints = len(CONSTRAINT.findall(text))
    if coding:
        found.append("coding")
    if math:
        found.append("math")
    if CREATIVE.search(text):
        found.append("creative_writing")
    if constraints:
        found.append("instruction_following")
    demands = coding + math + (constraints > 0) + (text.count("?") >= 2)
    if len(text.split()) >= 40 and demands >= 2:
        found.append("hard_prompts")
    if max(len(prompts), battle.turn) > 1:
        found.append("multi_turn")
    if len(text.split()) >= 375:  # 500 tokens at about 0.75 words a token
        found.append("long_query")
    found.append(language_of(text) if text.strip() else "other_language")
    return found


JUDGED = ("coding", "math", "creative_writing", "instruction_following", "hard_prompts")


def judge_prompt(prompt: str) -> str:
    """What a judge model is asked about a battle's first prompt."""
    return (
        "Which of these categories does the user prompt below belong to? Categories: "
        "coding (writing, fixing or explaining code), math (calculation or mathematical "
        "reasoning), creative_writing (stories, poems, role play), instruction_following "
        "(explicit constraints on the answer's form), hard_prompts (specific, complex, "
        "needs expertise and problem solving). Answer with the matching category names "
        "separated by commas, or none.\n\n<prompt>\n" + prompt[:4000] + "\n</prompt>"
    )


def parse_judged(reply: str) -> list[str]:
    """The categories a judge's reply names (spaces or underscores), in `JUDGED` order."""
    text = reply.lower().replace(" ", "_").replace("-", "_")
    return [name for name in JUDGED if name in text]
