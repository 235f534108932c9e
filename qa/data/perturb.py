"""Rules that turn an answerable question into one its passage no longer answers.

No entity tagger is at hand offline, so the rules are plain and explainable: a term of the
question that the passage contains (a year, a number, a month, a capitalised name, or a word of a
small antonym list) is swapped for a term of the same kind that the passage does not contain.
Years, numbers, months and names come from other paragraphs of the same article, so the new
question still sounds like the article; antonyms come from ANTONYMS. Negation words are never
used: a model would learn "not" means "no answer" (the shortcut this is meant to cure).

Everything here is a pure function of its arguments: the same question, passage and other
paragraphs always give the same options, in the same order.
"""

import functools
import re
from dataclasses import dataclass

# Word pairs that flip what a question asks for; each maps both ways. No negations on purpose.
_PAIRS = (
    ("first", "last"),
    ("before", "after"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("most", "least"),
    ("highest", "lowest"),
    ("longest", "shortest"),
    ("oldest", "youngest"),
    ("earliest", "latest"),
    ("maximum", "minimum"),
    ("north", "south"),
    ("east", "west"),
    ("northern", "southern"),
    ("eastern", "western"),
    ("northernmost", "southernmost"),
    ("upper", "lower"),
    ("above", "below"),
    ("increase", "decrease"),
    ("increased", "decreased"),
    ("won", "lost"),
    ("winner", "loser"),
    ("men", "women"),
    ("male", "female"),
)


def _both_ways(pairs) -> dict[str, str]:
    """Each word to its opposite; a word in two pairs keeps its first ("smallest": "largest")."""
    table = {}
    for a, b in pairs:
        table.setdefault(a, b)
        table.setdefault(b, a)
    return table


ANTONYMS = _both_ways(_PAIRS)


def _words_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATIONS = frozenset({"not", "never", "no", "none", "nobody", "nothing", "neither", "nor"})
MONTHS = _words_of(
    "january february march april may june july august september october november december"
)
WEEKDAYS = _words_of("monday tuesday wednesday thursday friday saturday sunday")
# Capitalised words that are not names when they stand alone (sentence openers after a colon,
# pronouns, question words); a run made only of these is not a name.
_NOT_NAMES = _words_of(
    "i a an the in on at of to by for from with and or but as it its he she they we you "
    "this that these those there what who whom whose which when where why how if"
)
_JOINERS = frozenset({"of", "de", "du", "von", "van", "der", "del", "da"})
# Capitalised number words ("Chapter One") are no names either.
_NUMBER_WORDS = _words_of(
    "one two three four five six seven eight nine ten eleven twelve hundred thousand"
)

KINDS = ("year", "number", "month", "name", "antonym")

_WORD = re.compile(r"\w+(?:['’.-]\w+)*")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?!\w|[.,]\d)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]’”]*\s*$")


@dataclass(frozen=True)
class Term:
    kind: str
    text: str
    start: int  # character offsets in the text it was found in
    end: int


@dataclass(frozen=True)
class Perturbation:
    kind: str
    original: str  # the question's term, which the passage contains
    replacement: str  # a term of the same kind that the passage lacks
    question: str  # the question with the term swapped


def occurs(term: str, text: str) -> bool:
    """Does `term` occur in `text` as whole words, ignoring case?"""
    return re.search(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text, re.IGNORECASE) is not None


def number_terms(text: str) -> list[Term]:
    """Years (1000-2099 written as four digits) and other numbers, as written."""
    found = []
    for match in _NUMBER.finditer(text):
        value = match.group()
        kind = "year" if re.fullmatch(r"1\d{3}|20\d{2}", value) else "number"
        found.append(Term(kind, value, match.start(), match.end()))
    return found


def _at_sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'(“‘[")
    return not before or before.endswith("\n") or _SENTENCE_END.search(before) is not None


def _is_capitalised(word: str) -> bool:
    return word[0].isupper() and not word[0].isdigit()


def _strip_possessive(word: str) -> str:
    return re.sub(r"['’]s$", "", word)


def name_runs(text: str) -> list[tuple[Term, bool]]:
    """Runs of capitalised words (joined by "of", "de", ...), each with: does it open a sentence?

    Months, weekdays and lone function words break runs: they are capitalised but not names.
    """
    words = list(_WORD.finditer(text))
    runs, current = [], []

    def close():
        while current and current[-1].group().lower() in _JOINERS:
            current.pop()
        if not current:  # most words close no run: nothing to check
            return
        # "George W. Bush" splits at the initial's full stop: a run with an initial is cut short,
        # so it is left out rather than swapped as "George W".
        plain = not any(len(w.group()) == 1 or w.group().lower() in _NUMBER_WORDS for w in current)
        if current and plain and not all(w.group().lower() in _NOT_NAMES for w in current):
            start, end = current[0].start(), current[-1].end()
            name = _strip_possessive(text[start:end])
            runs.append(
                (Term("name", name, start, start + len(name)), _at_sentence_start(text, start))
            )
        current.clear()

    for i, word in enumerate(words):
        token = word.group()
        lower = token.lower()
        if _is_capitalised(token) and lower not in MONTHS and lower not in WEEKDAYS:
            gap = text[current[-1].end() : word.start()] if current else " "
            if current and gap != " ":
                close()
            if not current and lower in _NOT_NAMES and i + 1 < len(words):
                # "The Hague" keeps "Hague"; a lone "The" at a sentence start is no name.
                continue
            current.append(word)
            if token != _strip_possessive(token):
                close()  # "Beyonce's album": the name ends at the possessive
        elif current and lower in _JOINERS and text[current[-1].end() : word.start()] == " ":
            current.append(word)
        else:
            close()
    close()
    return runs


def month_terms(text: str) -> list[Term]:
    return [
        Term("month", w.group(), w.start(), w.end())
        for w in _WORD.finditer(text)
        if w.group().lower() in MONTHS and _is_capitalised(w.group())
    ]


def antonym_terms(text: str) -> list[Term]:
    return [
        Term("antonym", w.group(), w.start(), w.end())
        for w in _WORD.finditer(text)
        if w.group().lower() in ANTONYMS
    ]


def question_terms(question: str, names: set[str]) -> list[Term]:
    """The terms of a question a rule may swap, in order of position.

    A capitalised run counts as a name if it is not the question's opening word, or if the
    article uses it mid-sentence (`names`): "Who" is no name, "Beyonce" opening a question is.
    """
    found = number_terms(question) + month_terms(question) + antonym_terms(question)
    for term, opens in name_runs(question):
        if not opens or term.text in names:
            found.append(term)
    return sorted(found, key=lambda t: (t.start, KINDS.index(t.kind)))


def words(text: str) -> set[str]:
    """The text's words, lower-cased, split at every non-word character."""
    return {w.lower() for w in re.findall(r"\w+", text)}


def _number_key(text: str) -> str:
    """A number's value as text: 1,000 and 1000 are one number, 03 and 3 too."""
    whole, _, fraction = text.replace(",", "").partition(".")
    return (whole.lstrip("0") or "0") + ("." + fraction if fraction.strip("0") else "")


@functools.cache  # a term is checked against every paragraph and question of its article
def _term_words(term: str) -> frozenset[str]:
    return frozenset(words(term))


@functools.cache
def _pieces(kind: str, replacement: str) -> tuple[str, ...]:
    return tuple(w for w in sorted(_term_words(replacement)) if kind != "name" or w not in _JOINERS)


def _absent(kind: str, replacement: str, passage_words: set[str], passage_numbers: set[str]):
    if kind in ("year", "number"):
        return _number_key(replacement) not in passage_numbers
    return not any(piece in passage_words for piece in _pieces(kind, replacement))


def is_absent(kind: str, replacement: str, passage: str) -> bool:
    """The rule every swapped-in term obeys: the passage does not contain it.

    Numbers compare by value (1,000 is 1000); other terms by word, ignoring case, and a name is
    absent only if none of its words is there: "Holloway" cannot replace "Margaret Holloway".
    """
    numbers = {_number_key(t.text) for t in number_terms(passage)}
    return _absent(kind, replacement, words(passage), numbers)


def _digits(text: str) -> int:
    """Digits before the decimal point: 1,250 and 4000 are of one size, 12 is not."""
    return len(_number_key(text).split(".")[0])


class Article:
    """The paragraphs of one article, indexed once: the terms each holds, by kind.

    Term pools are keyed by kind ("year", "number", "month", or "name/N" for names of N words).
    """

    def __init__(self, paragraphs: list[str]):
        self.paragraphs = list(paragraphs)
        self.words = [words(p) for p in self.paragraphs]
        self.numbers = [{_number_key(t.text) for t in number_terms(p)} for p in self.paragraphs]
        # A lone capitalised word the article also writes in lower case ("Table" in a heading,
        # "table" in a sentence) is a common noun, not a name.
        lower = {w for p in self.paragraphs for w in re.findall(r"\w+", p) if w.islower()}
        common = {w for p in self.paragraphs for w in re.findall(r"\w+", p) if w.lower() in lower}
        # {pool key: {term: the paragraphs it stands in}}, built once for every question.
        self.where = {}
        for index, paragraph in enumerate(self.paragraphs):
            terms = number_terms(paragraph) + month_terms(paragraph)
            terms += [t for t, opens in name_runs(paragraph) if not opens and t.text not in common]
            for term in terms:
                self.where.setdefault(self._key(term), {}).setdefault(term.text, set()).add(index)
        self.names = {t for key, table in self.where.items() if key[:5] == "name/" for t in table}

    @staticmethod
    def _key(term: Term) -> str:
        if term.kind == "name":
            return f"name/{len([w for w in words(term.text) if w not in _JOINERS])}"
        return term.kind

    def _pool(self, index: int, key: str) -> set[str]:
        """Terms of that kind in the article's other paragraphs."""
        return {t for t, where in self.where.get(key, {}).items() if where - {index}}

    def replacements(self, index: int, term: Term, question: str) -> list[str]:
        """Terms of the same kind that could replace `term` in paragraph `index`, sorted."""
        if term.kind == "antonym":
            word = ANTONYMS[term.text.lower()]
            pool = {word[0].upper() + word[1:] if term.text[0].isupper() else word}
        else:
            pool = self._pool(index, self._key(term))
            if term.kind == "number":  # of the same size: "300" for "450", not "2"
                pool = {t for t in pool if _digits(t) == _digits(term.text)}
        question_words = words(question)
        question_numbers = {_number_key(t.text) for t in number_terms(question)}
        return sorted(
            r
            for r in pool
            if _absent(term.kind, r, self.words[index], self.numbers[index])
            and _absent(term.kind, r, question_words, question_numbers)
            and not _term_words(r) & NEGATIONS
        )

    def options(self, index: int, question: str) -> list[tuple[Term, list[str]]]:
        """Each swappable term of the question with its possible replacements, in question order.

        A term qualifies only if the passage contains it (the link the swap breaks), the
        question says it once, and some term of its kind is absent from the passage.
        """
        passage = self.paragraphs[index]
        found = []
        for term in question_terms(question, self.names):
            if term.kind in ("year", "number"):
                present = _number_key(term.text) in self.numbers[index]
            else:
                present = occurs(term.text, passage)
            # A term the question says twice would keep its other mention: left alone.
            once = (
                len(re.findall(r"(?<!\w)" + re.escape(term.text) + r"(?!\w)", question, re.I)) == 1
            )
            choices = self.replacements(index, term, question) if present and once else []
            if choices:
                found.append((term, choices))
        return found


def apply(question: str, term: Term, replacement: str) -> Perturbation:
    new = question[: term.start] + replacement + question[term.end :]
    return Perturbation(term.kind, term.text, replacement, new)
