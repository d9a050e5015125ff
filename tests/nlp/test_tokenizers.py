"""Tokenizer round trips, unknown characters, state in checkpoints."""

from __future__ import annotations

import torch

from nlp.data.corpora import compare_corpus, number_words, translation_corpus
from nlp.tokenizers import BOS, EOS, PAD, UNK, CharTokenizer, SentencePieceTokenizer, tokenizer_from_state

TEXTS = ["twenty-one", "einundzwanzig", "vingt et un", "veintiún", "quatre-vingt-dix-neuf"]


def test_char_round_trip_and_unknown():
    tok = CharTokenizer.fit(TEXTS)
    for t in TEXTS:
        ids = tok.encode(t)
        assert len(ids) == len(t) and min(ids) > EOS
        assert tok.decode(ids) == t
    ids = tok.encode("zwölf!")
    assert ids[-1] == UNK and tok.decode(ids).endswith("\ufffd")
    # decode stops at </s> and skips <s>/<pad>
    assert tok.decode([BOS, *tok.encode("un"), EOS, *tok.encode("xx"), PAD]) == "un"


def test_char_state_round_trip():
    tok = CharTokenizer.fit(TEXTS)
    state = tok.state_dict()
    again = tokenizer_from_state(state)
    assert again.itos == tok.itos
    # survives the checkpoint loader (weights_only=True)
    path = "/tmp/_nlp_tok_state.pt"
    torch.save({"s": state}, path)
    loaded = torch.load(path, weights_only=True)["s"]
    assert tokenizer_from_state(loaded).encode("vingt") == tok.encode("vingt")


def test_sentencepiece_round_trip_and_state(tmp_path):
    texts = [number_words(n, lang) for n in range(0, 400, 3) for lang in ("en", "de")]
    tok = SentencePieceTokenizer.fit(texts, vocab_size=200)  # shrinks to what the tiny corpus supports
    assert 4 < tok.vocab_size <= 200
    for t in texts[:50]:
        assert tok.decode(tok.encode(t)) == t
    state = tok.state_dict()
    torch.save({"s": state}, tmp_path / "s.pt")
    again = tokenizer_from_state(torch.load(tmp_path / "s.pt", weights_only=True)["s"])
    assert again.encode("three hundred and one") == tok.encode("three hundred and one")
    tok.save(str(tmp_path / "spm.model"))
    assert SentencePieceTokenizer.load(str(tmp_path / "spm.model")).vocab_size == tok.vocab_size


def test_compare_corpus_is_order_only():
    data = compare_corpus(400, max_number=999, seed=3)
    assert data == compare_corpus(400, max_number=999, seed=3)  # deterministic
    labels = torch.tensor(data["label"], dtype=torch.float)
    assert 0.4 < labels.mean() < 0.6
    # the label is decided by the order of the two phrases (bag of tokens cannot see it)
    a, b = data["text"][0].split(" | ")
    assert a != b and set(data["lang"]) <= {"en", "de", "fr", "es"}


def test_translation_corpus_holds_out_numbers():
    data = translation_corpus({"train": 300, "val": 50, "test": 50}, max_number=9999, seed=0)
    nums = {k: set(v["number"]) for k, v in data.items()}
    assert not nums["train"] & nums["test"] and not nums["train"] & nums["val"]
    i = data["test"]["number"].index(data["test"]["number"][0])
    n = int(data["test"]["number"][i])
    assert data["test"]["tgt"][i] == number_words(n, "de") and data["test"]["src"][i] == number_words(n, "en")
