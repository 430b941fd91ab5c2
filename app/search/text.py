"""Tokenizing chat for search, in Python, once for every engine.

Every engine receives the same tokens, separated by spaces, so SQLite, PostgreSQL and Elasticsearch find the
same messages for the same words (the conformance suite checks it), and no engine needs an extension or plugin:

- Unicode: compatibility forms folded (NFKD: full-width letters, ligatures), case folded (``casefold``: ß is
  ss), and accents dropped from Latin, Greek and Cyrillic letters, so ``cafe`` finds ``Café``. Accents are kept
  elsewhere: in kana the voicing mark is a different sound, not an accent.
- Words are runs of letters and digits; punctuation, ``_`` and spaces separate them. A URL is its parts
  (``https://example.com/a`` -> ``https example com a``); a mention ``<@123>`` is the id.
- CJK has no spaces between words, so every run of Han, kana or Hangul becomes its characters and its
  overlapping character pairs (bigrams). A query word of one character matches the character; a longer one
  needs every pair it contains (an AND, not a phrase: a rare false positive rather than a missed match).
- Stemming: English only (Porter/Snowball in the engines, which apply it to document and query tokens alike),
  with no stop words, so ``running`` finds ``run`` and a search for ``the`` still finds something.

A content query is words (all must match), ``"quoted phrases"`` (their words in order) and ``-excluded`` words
or phrases. A query without a word to look for (only punctuation, only exclusions) matches nothing.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
                  r"\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]+")
#: Combining marks are dropped when they follow a letter below this code point (Latin, Greek, Cyrillic).
_ACCENTED_SCRIPTS_END = 0x0530
#: A query of more words than this is cut: no chat message needs more to be found, and engines slow down.
MAX_QUERY_TERMS = 32


def fold(text: str) -> str:
    """Compatibility forms, case and the accents of alphabetic scripts folded away."""
    if text.isascii():
        return text.lower()  # the common case, and nothing below would change more than the case of ASCII
    decomposed = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    base = 0
    for character in decomposed:
        if unicodedata.combining(character):
            if base < _ACCENTED_SCRIPTS_END:
                continue
        else:
            base = ord(character)
        kept.append(character)
    return unicodedata.normalize("NFC", "".join(kept)).casefold()


def _cjk_tokens(run: str) -> list[str]:
    return list(run) + [run[i:i + 2] for i in range(len(run) - 1)]


def tokens(text: str) -> list[str]:
    """The index tokens of ``text``, in order."""
    folded = fold(text)
    if folded.isascii():
        return _WORD.findall(folded)
    found: list[str] = []
    for word in _WORD.findall(folded):
        position = 0
        for match in _CJK.finditer(word):
            if match.start() > position:
                found.append(word[position:match.start()])
            found.extend(_cjk_tokens(match.group()))
            position = match.end()
        if position < len(word):
            found.append(word[position:])
    return found


def index_text(text: str) -> str:
    """What an engine indexes for a message's content: its tokens separated by spaces."""
    return " ".join(tokens(text))


def _query_terms(word: str) -> list[str]:
    """The tokens a query word needs: a CJK run of two or more characters needs its pairs, not its characters."""
    terms: list[str] = []
    for folded in _WORD.findall(fold(word)):
        position = 0
        for match in _CJK.finditer(folded):
            if match.start() > position:
                terms.append(folded[position:match.start()])
            run = match.group()
            terms.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
            position = match.end()
        if position < len(folded):
            terms.append(folded[position:])
    return terms


@dataclass(frozen=True)
class Clause:
    """Terms that must all be present (in order and adjacent when ``phrase``), or absent when ``negated``."""

    terms: tuple[str, ...]
    phrase: bool = False
    negated: bool = False


@dataclass(frozen=True)
class ContentQuery:
    clauses: tuple[Clause, ...]

    @property
    def positive(self) -> tuple[Clause, ...]:
        return tuple(c for c in self.clauses if not c.negated)

    @property
    def negative(self) -> tuple[Clause, ...]:
        return tuple(c for c in self.clauses if c.negated)

    @property
    def matches_nothing(self) -> bool:
        return not self.positive

    def fts5(self, prefix: str = "") -> str:
        """The query in SQLite FTS5's syntax (every term quoted, so no word is read as an operator), each term
        with ``prefix`` (the SQLite engine indexes a guild's tokens under the guild)."""
        def rendered(clause: Clause) -> str:
            if clause.phrase:
                return '"' + " ".join(prefix + term for term in clause.terms) + '"'
            return " AND ".join(f'"{prefix}{term}"' for term in clause.terms)

        text = " AND ".join(f"({rendered(c)})" for c in self.positive)
        for clause in self.negative:
            text += f" NOT ({rendered(clause)})"
        return text

    def websearch(self) -> str:
        """The query for PostgreSQL's ``websearch_to_tsquery`` (terms are letters and digits only)."""
        return self._signed(required="")

    def simple_query_string(self) -> str:
        """The query for Elasticsearch's ``simple_query_string`` with ``default_operator: and``."""
        return self._signed(required="+")

    def _signed(self, *, required: str) -> str:
        """The clauses in the web-search syntax both engines read: ``-`` before an excluded term or phrase,
        ``required`` before a required one, phrases quoted."""
        def rendered(clause: Clause) -> str:
            sign = "-" if clause.negated else required
            if clause.phrase or (clause.negated and len(clause.terms) > 1):
                return sign + '"' + " ".join(clause.terms) + '"'
            return " ".join(sign + term for term in clause.terms)

        return " ".join(rendered(c) for c in self.clauses)


_QUERY_PART = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')


def parse_query(text: str) -> ContentQuery:
    """A content query from what a user typed (see the module's docstring)."""
    clauses: list[Clause] = []
    count = 0
    for match in _QUERY_PART.finditer(text):
        quoted_sign, quoted, word_sign, word = match.groups()
        if quoted is not None:
            terms = [t for part in quoted.split() for t in _query_terms(part)]
            negated = bool(quoted_sign)
            # A phrase with CJK in it is matched as all its terms: the pairs of a run are not adjacent tokens.
            phrase = len(terms) > 1 and not _CJK.search(quoted)
        else:
            terms = _query_terms(word)
            negated = bool(word_sign)
            phrase = False
        terms = terms[:MAX_QUERY_TERMS - count]
        if terms:
            count += len(terms)
            clauses.append(Clause(terms=tuple(terms), phrase=phrase, negated=negated))
    return ContentQuery(clauses=tuple(clauses))
