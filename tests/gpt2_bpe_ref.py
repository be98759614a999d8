"""An independent reference GPT-2 BPE tokenizer, Python standard library only.

It follows GPT-2's encoder.py (openai/gpt-2) step by step, so that the C
tokenizer in src/tok/ can be checked against something written differently:

* The pre-tokenizer is GPT-2's regex

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

  run as a backtracking matcher would: at each position the alternatives are
  tried in order, ` ?` first with the space and then without, and `\\s+(?!\\S)`
  greedily and then giving back one character at a time until the look-ahead
  holds. (The standard `re` has no \\p{L}.) Classes come from unicodedata:
  \\p{L} = categories L*, \\p{N} = N*, \\s = White_Space, which is str.isspace()
  without U+001C..U+001F.
* BPE is encoder.py's loop: find the adjacent pair of lowest rank, merge every
  occurrence of it left to right, repeat until no pair has a rank.

Usage as a module: GPT2BPE(encoder_json, vocab_bpe).encode(text). As a script:
  python3 tests/gpt2_bpe_ref.py ../shared/data/gpt2 "Hello world"
"""
import json
import os
import sys
import unicodedata

ENDOFTEXT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 bytes to printable characters."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
            + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def is_space(c):
    return c.isspace() and not "\x1c" <= c <= "\x1f"


def is_other(c):
    return not (is_space(c) or is_letter(c) or is_number(c))


CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def _run(text, i, pred):
    """End of the longest run of characters satisfying pred from i."""
    while i < len(text) and pred(text[i]):
        i += 1
    return i


def _match(text, i):
    """End of the regex match that starts at i (the regex always matches)."""
    n = len(text)
    for lit in CONTRACTIONS:
        if text.startswith(lit, i):
            return i + len(lit)
    for pred in (is_letter, is_number, is_other):  # ' ?X+'
        if text[i] == " ":  # with the optional space
            end = _run(text, i + 1, pred)
            if end > i + 1:
                return end
        end = _run(text, i, pred)  # without it
        if end > i:
            return end
    end = _run(text, i, is_space)  # '\s+(?!\S)': greedy, then backtrack
    for k in range(end, i, -1):
        if k == n or not (not is_space(text[k])):  # (?!\S): not followed by a non-space
            return k
    if end > i:  # '\s+'
        return end
    raise AssertionError("the pattern matches every character")


def pretokenize(text):
    """GPT-2's re.findall(pat, text)."""
    out = []
    i = 0
    while i < len(text):
        j = _match(text, i)
        out.append(text[i:j])
        i = j
    return out


class GPT2BPE:
    def __init__(self, encoder_json, vocab_bpe):
        with open(encoder_json, encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(vocab_bpe, encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line.strip()]
        self.ranks = {pair: r for r, pair in reversed(list(enumerate(merges)))}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            first, second = best
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def encode_ordinary(self, text):
        ids = []
        for piece in pretokenize(text):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def encode(self, text, allow_special=False):
        if not allow_special:
            return self.encode_ordinary(text)
        ids = []
        for k, part in enumerate(text.split(ENDOFTEXT)):
            if k:
                ids.append(self.encoder[ENDOFTEXT])
            ids.extend(self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids):
        return bytes(self.byte_decoder[c] for i in ids for c in self.decoder[i])


def main():
    folder = sys.argv[1]
    bpe = GPT2BPE(os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe"))
    for text in sys.argv[2:]:
        print(json.dumps(bpe.encode(text, allow_special=True)))


if __name__ == "__main__":
    main()
