"""What Palestra Tiny knows: a small, fixed world of facts, and the phrasings it is asked
about them in. Pure data; `corpus.py` turns it into text."""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAME = "Palestra Tiny"
IDENTITY = f"I am {MODEL_NAME}, a small chat model made by the Palestra project."
SKILLS = "I can answer simple questions about countries, colors, animals, words and numbers."
GREETING_REPLY = f"Hello! {IDENTITY} How can I help you today?"
REFUSAL_GENERIC = f"I'm sorry, I don't know that. {SKILLS}"
MAX_NUMBER = 12

CAPITALS: dict[str, str] = {
    "France": "Paris",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Germany": "Berlin",
    "Portugal": "Lisbon",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Ireland": "Dublin",
    "Hungary": "Budapest",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Thailand": "Bangkok",
    "Russia": "Moscow",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Argentina": "Buenos Aires",
    "Brazil": "Brasilia",
    "Australia": "Canberra",
    "Turkey": "Ankara",
    "Cuba": "Havana",
    "Belgium": "Brussels",
    "the Netherlands": "Amsterdam",
    "Switzerland": "Bern",
    "Iceland": "Reykjavik",
    "Vietnam": "Hanoi",
    "Indonesia": "Jakarta",
    "Nigeria": "Abuja",
    "Morocco": "Rabat",
    "Colombia": "Bogota",
    "South Korea": "Seoul",
}

COLORS: dict[str, str] = {
    "the sky": "blue",
    "grass": "green",
    "a banana": "yellow",
    "snow": "white",
    "coal": "black",
    "a tomato": "red",
    "an orange": "orange",
    "a lemon": "yellow",
    "milk": "white",
    "a strawberry": "red",
    "the sun": "yellow",
    "a carrot": "orange",
    "chocolate": "brown",
    "a frog": "green",
    "an elephant": "gray",
    "a flamingo": "pink",
    "the ocean": "blue",
    "a lime": "green",
    "a crow": "black",
    "a cherry": "red",
    "a pumpkin": "orange",
    "a plum": "purple",
    "a mouse": "gray",
    "a leaf": "green",
}

SOUNDS: dict[str, str] = {
    "a cow": "moo",
    "a dog": "woof",
    "a cat": "meow",
    "a duck": "quack",
    "a sheep": "baa",
    "a pig": "oink",
    "a lion": "roar",
    "an owl": "hoot",
    "a horse": "neigh",
    "a frog": "ribbit",
    "a bee": "buzz",
    "a snake": "hiss",
    "a mouse": "squeak",
    "a goat": "bleat",
    "a wolf": "howl",
}

LEGS: dict[str, str] = {
    "a spider": "eight",
    "an ant": "six",
    "a beetle": "six",
    "a bee": "six",
    "a dog": "four",
    "a cat": "four",
    "a horse": "four",
    "a cow": "four",
    "an elephant": "four",
    "a chicken": "two",
    "a duck": "two",
    "a penguin": "two",
    "a snake": "no",
    "a fish": "no",
    "a worm": "no",
}

_OPPOSITE_PAIRS = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("light", "dark"),
    ("open", "closed"),
    ("day", "night"),
    ("left", "right"),
    ("wet", "dry"),
    ("full", "empty"),
    ("early", "late"),
    ("hard", "soft"),
    ("in", "out"),
    ("loud", "quiet"),
    ("strong", "weak"),
    ("high", "low"),
    ("clean", "dirty"),
    ("old", "new"),
    ("long", "short"),
    ("good", "bad"),
    ("near", "far"),
]
OPPOSITES: dict[str, str] = {a: b for a, b in _OPPOSITE_PAIRS} | {b: a for a, b in _OPPOSITE_PAIRS}

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True)
class Relation:
    """One kind of question: its facts, how it is asked, how it is answered."""

    name: str
    facts: dict[str, str]
    questions: tuple[str, ...]  # seen in training (some combinations held out)
    unseen_questions: tuple[str, ...]  # never seen in training: held-out phrasings
    answer: str
    follow_ups: tuple[str, ...]
    statements: tuple[str, ...]  # declarative sentences for pretraining


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def answer_for(relation: Relation, key: str) -> str:
    value = relation.facts[key]
    return relation.answer.format(x=key, y=value, X=_upper_first(key), Y=_upper_first(value))


_FOLLOW = ("And {x}?", "What about {x}?", "How about {x}?", "And what about {x}?")

RELATIONS: tuple[Relation, ...] = (
    Relation(
        "capital",
        CAPITALS,
        questions=(
            "What is the capital of {x}?",
            "What's the capital of {x}?",
            "Which city is the capital of {x}?",
            "Tell me the capital of {x}.",
            "Do you know the capital of {x}?",
            "What city is the capital of {x}?",
            "Name the capital of {x}.",
            "capital of {x}?",
            "Can you tell me the capital of {x}?",
            "What is the capital city of {x}?",
        ),
        unseen_questions=(
            "Please tell me what the capital of {x} is.",
            "I would like to know the capital of {x}.",
        ),
        answer="The capital of {x} is {y}.",
        follow_ups=(*_FOLLOW, "And the capital of {x}?"),
        statements=(
            "The capital of {x} is {y}.",
            "{Y} is the capital of {x}.",
            "{Y} is a city in {x}. It is the capital.",
            "People in {x} call {y} their capital.",
        ),
    ),
    Relation(
        "color",
        COLORS,
        questions=(
            "What color is {x}?",
            "What is the color of {x}?",
            "Which color is {x}?",
            "Tell me the color of {x}.",
            "What colour is {x}?",
            "Do you know what color {x} is?",
            "color of {x}?",
            "Can you tell me what color {x} is?",
        ),
        unseen_questions=("Please tell me the color of {x}.", "I wonder what color {x} is."),
        answer="{X} is {y}.",
        follow_ups=_FOLLOW,
        statements=("{X} is {y}.", "The color of {x} is {y}.", "Everyone knows that {x} is {y}."),
    ),
    Relation(
        "sound",
        SOUNDS,
        questions=(
            "What sound does {x} make?",
            "What does {x} say?",
            "What noise does {x} make?",
            "Which sound does {x} make?",
            "Tell me what {x} says.",
            "Do you know what sound {x} makes?",
            "What sound do you hear from {x}?",
        ),
        unseen_questions=("Please tell me the sound {x} makes.", "I want to know what {x} says."),
        answer="{X} says {y}.",
        follow_ups=("And {x}?", "What about {x}?", "How about {x}?"),
        statements=("{X} says {y}.", "{X} makes the sound {y}.", "When {x} talks, it says {y}."),
    ),
    Relation(
        "legs",
        LEGS,
        questions=(
            "How many legs does {x} have?",
            "How many legs has {x} got?",
            "Tell me how many legs {x} has.",
            "Do you know how many legs {x} has?",
            "What is the number of legs of {x}?",
            "Count the legs of {x}.",
        ),
        unseen_questions=(
            "Please tell me how many legs {x} has.",
            "I wonder how many legs {x} has.",
        ),
        answer="{X} has {y} legs.",
        follow_ups=("And {x}?", "What about {x}?", "How about {x}?"),
        statements=("{X} has {y} legs.", "Look at {x}: it has {y} legs."),
    ),
    Relation(
        "opposite",
        OPPOSITES,
        questions=(
            "What is the opposite of {x}?",
            "What's the opposite of {x}?",
            "Tell me the opposite of {x}.",
            "What word is the opposite of {x}?",
            "Do you know the opposite of {x}?",
            "Give me the opposite of {x}.",
            "opposite of {x}?",
        ),
        unseen_questions=(
            "Please tell me the opposite of {x}.",
            "I need the opposite of the word {x}.",
        ),
        answer="The opposite of {x} is {y}.",
        follow_ups=("And {x}?", "What about {x}?", "And the opposite of {x}?"),
        statements=("The opposite of {x} is {y}.", "{X} and {y} are opposites."),
    ),
    Relation(
        "day_after",
        {d: DAYS[(i + 1) % 7] for i, d in enumerate(DAYS)},
        questions=(
            "What day comes after {x}?",
            "Which day is after {x}?",
            "What is the day after {x}?",
            "Tell me the day after {x}.",
            "What day follows {x}?",
        ),
        unseen_questions=("Please tell me which day comes after {x}.",),
        answer="The day after {x} is {y}.",
        follow_ups=("And after {x}?", "What about after {x}?"),
        statements=("The day after {x} is {y}.", "{Y} comes after {x}."),
    ),
    Relation(
        "month_after",
        {m: MONTHS[(i + 1) % 12] for i, m in enumerate(MONTHS)},
        questions=(
            "What month comes after {x}?",
            "Which month is after {x}?",
            "What is the month after {x}?",
            "Tell me the month after {x}.",
            "What month follows {x}?",
        ),
        unseen_questions=("Please tell me which month comes after {x}.",),
        answer="The month after {x} is {y}.",
        follow_ups=("And after {x}?", "What about after {x}?"),
        statements=("The month after {x} is {y}.", "{Y} comes after {x}."),
    ),
)

ADD_QUESTIONS = (
    "What is {a} plus {b}?",
    "What is {a} + {b}?",
    "How much is {a} plus {b}?",
    "Add {a} and {b}.",
    "What do you get if you add {a} and {b}?",
    "{a} + {b} = ?",
    "Can you add {a} and {b}?",
    "Calculate {a} plus {b}.",
    "What is the sum of {a} and {b}?",
)
ADD_UNSEEN = ("Please add {a} and {b} for me.", "I need the sum of {a} and {b}.")
SUB_QUESTIONS = (
    "What is {a} minus {b}?",
    "What is {a} - {b}?",
    "How much is {a} minus {b}?",
    "Subtract {b} from {a}.",
    "What do you get if you take {b} from {a}?",
    "{a} - {b} = ?",
    "Calculate {a} minus {b}.",
)
SUB_UNSEEN = ("Please subtract {b} from {a} for me.", "I need {a} minus {b}.")
ARITH_FOLLOW = {
    "plus": ("And {a} plus {b}?", "What about {a} plus {b}?"),
    "minus": ("And {a} minus {b}?", "What about {a} minus {b}?"),
}

GREETINGS = (
    "Hello!",
    "Hi!",
    "Hey!",
    "Hello.",
    "Hi there!",
    "Good morning!",
    "Hello there!",
    "Hey there.",
    "Good evening!",
    "Greetings!",
    "hi",
    "hello",
)
GREETINGS_UNSEEN = ("Good afternoon!", "Hiya!")

CHITCHAT: dict[str, tuple[tuple[str, ...], str]] = {
    "who": (
        (
            "Who are you?",
            "What are you?",
            "Tell me about yourself.",
            "Introduce yourself.",
            "What is your name?",
            "What's your name?",
            "Do you have a name?",
        ),
        f"{IDENTITY} {SKILLS}",
    ),
    "what_can": (
        (
            "What can you do?",
            "How can you help me?",
            "What do you know?",
            "What questions can you answer?",
        ),
        SKILLS,
    ),
    "maker": (
        ("Who made you?", "Who created you?", "Who built you?", "Who trained you?"),
        f"I was made by the Palestra project. {SKILLS}",
    ),
    "human": (
        ("Are you a human?", "Are you a person?", "Are you a robot?", "Are you real?"),
        f"I am not a human. {IDENTITY}",
    ),
    "how_are": (
        ("How are you?", "How are you doing?", "How is it going?", "How do you feel?"),
        "I am doing well, thank you! How can I help you?",
    ),
    "thanks": (
        ("Thank you!", "Thanks!", "Thanks a lot.", "Thank you very much.", "thanks"),
        "You're welcome! Is there anything else I can help you with?",
    ),
    "bye": (
        ("Goodbye!", "Bye!", "See you later.", "Bye bye.", "Good night!"),
        "Goodbye! Have a nice day.",
    ),
}
CHITCHAT_UNSEEN: dict[str, tuple[str, ...]] = {
    "who": ("Could you tell me who you are?", "Who am I talking to?"),
    "maker": ("Who is your creator?",),
    "thanks": ("Thank you so much!",),
}

# Out-of-domain questions: the model should say it does not know.
OUT_OF_DOMAIN = (
    "What is the meaning of life?",
    "Who will win the next election?",
    "What is the weather like today?",
    "Write a poem about the sea.",
    "What is the price of gold?",
    "How do I fix my car?",
    "What is quantum physics?",
    "What time is it?",
    "Who is the president?",
    "Tell me a secret.",
    "What is the stock market doing?",
    "How far away is the moon?",
    "What is the best programming language?",
    "Can you write a story about dragons?",
    "What should I eat for dinner?",
    "How do airplanes fly?",
    "What happened in the news today?",
    "Translate this into French.",
    "Who invented the telephone?",
    "What is the tallest mountain in the world?",
)
OUT_OF_DOMAIN_UNSEEN = (
    "What is the population of the world?",
    "How do I bake bread?",
    "Who painted the Mona Lisa?",
    "What is the speed of light?",
)
UNKNOWN_ENTITY_QUESTIONS = (
    "What is the capital of {x}?",
    "What color is a {x}?",
    "What sound does a {x} make?",
    "How many legs does a {x} have?",
    "What is the opposite of {x}?",
    "Who is {x}?",
    "Where is {x}?",
    "What is {x}?",
    "Tell me about {x}.",
    "When was {x} born?",
)
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    f"You are {MODEL_NAME}, a small helpful assistant.",
    "You are a friendly assistant. Answer briefly.",
    "Answer the user's questions.",
)

_SYLLABLES = (
    "zor",
    "bla",
    "vin",
    "qua",
    "trel",
    "mox",
    "dra",
    "phi",
    "kel",
    "sut",
    "rix",
    "nol",
    "gam",
    "fen",
    "yul",
    "wob",
    "tas",
    "lur",
    "cre",
    "vok",
    "zim",
    "pel",
)


def fake_name(rng: object) -> str:
    """A made-up proper noun (two or three syllables)."""
    import random

    assert isinstance(rng, random.Random)
    parts = [rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))]
    name = "".join(parts)
    known = {k.lower() for r in RELATIONS for k in r.facts}
    return name.capitalize() if name not in known else name.capitalize() + "ia"
