"""Checks the C tokenizers (through build/tests/tools/tok_encode) against
independent Python references on >= 1000 varied strings:

* GPT-2 BPE against tests/gpt2_bpe_ref.py (stdlib only, hand-written regex
  scanner and encoder.py's merge loop) on ../shared/data/gpt2;
* llama2.c against a line-by-line Python port of run.c's encode() on
  ../shared/data/llama2c/tok512.bin;
* round trips decode(encode(x)) == x for GPT-2, llama2c and byte tokenizers.

Prints "PASS name" / "FAIL name: why" / "SKIP name: why" per check; exits 1 on
any failure. Skips where ../shared/data or the tool is absent.
"""
import gzip
import json
import os
import random
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import gpt2_bpe_ref  # noqa: E402

SHARED = os.environ.get("RLHF_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
TOOL = os.path.join(ROOT, os.environ.get("BUILD", "build"), "tests", "tools", "tok_encode")
failures = 0


def report(name, ok, why=""):
    global failures
    if ok:
        print("PASS " + name)
    else:
        failures += 1
        print("FAIL %s: %s" % (name, why))


def skip(name, why):
    print("SKIP %s: %s" % (name, why))


# ---------------------------------------------------------------- strings --
SCRIPTS = [
    "héllo wörld çà et là, naïve café",            # Latin with accents
    "Ελληνικά γράμματα και λέξεις",                  # Greek
    "Привет, как дела? Ёжик в тумане",               # Cyrillic
    "مرحبا بالعالم، كيف حالك؟",                      # Arabic
    "שלום עולם, מה שלומך",                            # Hebrew
    "नमस्ते दुनिया, आप कैसे हैं",                       # Devanagari (with combining signs)
    "สวัสดีชาวโลก ภาษาไทย",                             # Thai
    "你好，世界。中文字符测试",                         # CJK
    "こんにちは世界、カタカナとひらがな",               # Japanese
    "안녕하세요 세계, 한국어",                          # Hangul
    "ქართული ენა",                                    # Georgian
    "Հայերեն լեզու",                                  # Armenian
    "ሰላም ለዓለም",                                     # Ethiopic
    "தமிழ் மொழி",                                     # Tamil
    "ᚠᚢᚦᚨᚱᚲ ᚷᚹ",                                     # Runic
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝟙𝟚𝟛",                              # math alphanumerics (astral)
    "Ⅻ ⅻ ½ ¾ ² ³ ① ⑳ ٣٤٥ ३४५ ５６７ 〇",              # numbers: Nl, No, Nd of many scripts
]
EMOJI = [
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇩🇪", "1️⃣", "❤️", "🧑🏾‍💻", "👩‍❤️‍💋‍👨", "🤷‍♀️", "🐈‍⬛", "✌🏿",
]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0",
              "\u3000", "\u2028", "\u2029", "\u0085", "\u2003", "\u202f", "\u205f", "\u1680",
              "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\u180e", "\u200b", "\ufeff"]
CONTRACTION_TEXT = [
    "it's", "don't", "we're", "I've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "WE'RE", "I'VE",
    "I'M", "YOU'LL", "HE'D", "John'S", "it 's", "''s", "'s", "'", "'''", "rock'n'roll", "o'clock",
    "it’s", "y'all'd've", "'ll'll", "' s", "'S'T'RE",
]
CODE = [
    "def f(x):\n    return x**2  # square\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; i++) a[i] += b[i] * 3.14f;",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "SELECT * FROM t WHERE id >= 10 AND name LIKE '%foo%';",
    "x = {'a': [1, 2, 3], \"b\": None}  \n\n\n",
    "   indented\n        more\n\t\tmixed \t \n",
    "https://example.com/path?q=1&r=%20two#frag",
    "0x1F 1e-9 3.141592653589793 1,000,000 12:30:45 2024-01-31",
    "$$\\frac{a}{b} + \\sqrt{x^2}$$",
]
COMBINING = ["e\u0301", "a\u0308\u0304", "n\u0303", "Z\u0351\u0317\u0329\u0359a\u0346l\u0352go",
             "\u0301leading mark", "\u1100\u1161\u11a8", "ก\u0e34\u0e48", "\u05e9\u05c1\u05b8"]
WORDS = ("the of and to in is was for that with as on by at from it an be this which or are "
         "Hello world GPT tokenizer BPE merge rank Unicode byte level 2024 42 3.5").split()


def random_codepoint(rng):
    while True:
        r = rng.random()
        if r < 0.4:
            cp = rng.randrange(0x20, 0x250)
        elif r < 0.8:
            cp = rng.randrange(0x250, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= cp < 0xE000:
            return chr(cp)


def make_strings(hh_texts):
    """>= 1000 varied strings, the same every run."""
    rng = random.Random(20240531)
    out = []
    fixed = ["", "Hello world", " Hello world", "Hello world ", "hello  world", "a", " ", "\n",
             "   ", "\n\n\n", " \t \n", "123456789", " 123", "abc123def", "!!!???", " !!!",
             "I'm here, you're not", "\x00", "a\x00b", "\x7f\x01"]
    out += fixed
    out += SCRIPTS + EMOJI + WHITESPACE + CONTRACTION_TEXT + CODE + COMBINING
    pools = [SCRIPTS, EMOJI, WHITESPACE, CONTRACTION_TEXT, CODE, COMBINING, WORDS]
    for _ in range(300):  # mixtures of the pieces above
        parts = []
        for _ in range(rng.randrange(1, 8)):
            pool = rng.choice(pools)
            piece = rng.choice(pool)
            if pool is SCRIPTS and rng.random() < 0.5:
                a = rng.randrange(len(piece))
                piece = piece[a:a + rng.randrange(1, 12)]
            parts.append(piece)
            if rng.random() < 0.5:
                parts.append(rng.choice(WHITESPACE[:10]))
        out.append("".join(parts))
    for _ in range(200):  # random code points
        out.append("".join(random_codepoint(rng) for _ in range(rng.randrange(1, 25))))
    for _ in range(150):  # random bytes as UTF-8 with replacement
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        out.append(raw.decode("utf-8", errors="replace"))
    for _ in range(100):  # whitespace runs mixed with words, trailing whitespace
        out.append("".join(rng.choice(WHITESPACE[:12]) * rng.randrange(1, 4) + rng.choice(WORDS)
                           for _ in range(rng.randrange(1, 6))) + rng.choice(WHITESPACE[:12]))
    for _ in range(100):  # digits and punctuation
        out.append("".join(rng.choice("0123456789 .,-+/:'\"()[]{}$%#@!?^&*_=~`|\\<>;")
                           for _ in range(rng.randrange(1, 30))))
    for text in hh_texts:  # real English dialogue
        out.append(text)
    return out


def read_hh(n):
    path = os.path.join(SHARED, "hh-rlhf", "harmless-base-test.jsonl.gz")
    if not os.path.exists(path):
        return []
    texts = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            chosen = json.loads(line)["chosen"]
            texts.append(chosen[:300])
            if len(texts) == n:
                break
    return texts


# ------------------------------------------------------------- the C tool --
def run_tool(path, lines, *flags):
    p = subprocess.run([TOOL, path, *flags], input="".join(l + "\n" for l in lines),
                       capture_output=True, text=True, encoding="utf-8")
    if p.returncode != 0:
        raise RuntimeError("tok_encode %s failed: %s" % (path, p.stderr.strip()[:500]))
    return p.stdout.split("\n")[:len(lines)]


def c_encode(path, texts, allow_special=False):
    flags = ["--hex"] + (["--allow-special"] if allow_special else [])
    return [json.loads(l) for l in run_tool(path, [t.encode("utf-8").hex() for t in texts], *flags)]


def c_decode(path, id_lists):
    return [bytes.fromhex(l) for l in run_tool(path, [json.dumps(ids) for ids in id_lists],
                                               "--decode")]


def compare(name, texts, got, want, show=3):
    bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    why = "; ".join("%r: C %s, reference %s" % (t[:60], g[:20], w[:20]) for t, g, w in bad[:show])
    report("%s (%d strings)" % (name, len(texts)), not bad and len(got) == len(want),
           "%d of %d differ: %s" % (len(bad), len(texts), why))


# ------------------------------------------------------- llama2.c reference --
def load_llama2c(path):
    data = open(path, "rb").read()
    p = 4
    vocab, scores = [], []
    while p < len(data):
        score, n = struct.unpack_from("<fi", data, p)
        vocab.append(data[p + 8:p + 8 + n])
        scores.append(score)
        p += 8 + n
    return vocab, scores


def llama2c_encode(vocab, scores, lookup, text):
    """run.c's encode(t, text, bos=0, eos=0), transcribed."""
    tokens = []
    if text:
        tokens.append(lookup[b" "])
    buf = b""
    for k, c in enumerate(text):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = text[k + 1] if k + 1 < len(text) else 0
        if nxt & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            merged = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if merged != -1 and scores[merged] > best_score:
                best_score, best_id, best_idx = scores[merged], merged, i
        if best_idx == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


# ------------------------------------------------------------------ checks --
def main():
    if not os.path.isdir(SHARED):
        skip("tokenizer_test", "../shared/data not found")
        return 0
    if not os.access(TOOL, os.X_OK):
        skip("tokenizer_test", "%s not built" % TOOL)
        return 0
    texts = make_strings(read_hh(250))
    assert len(texts) >= 1000, len(texts)

    gpt2 = os.path.join(SHARED, "gpt2")
    if os.path.exists(os.path.join(gpt2, "encoder.json")):
        ref = gpt2_bpe_ref.GPT2BPE(os.path.join(gpt2, "encoder.json"),
                                   os.path.join(gpt2, "vocab.bpe"))
        got = c_encode(gpt2, ["Hello world", "<|endoftext|>", "<|endoftext|>"])
        report("gpt2_hello_world", got[0] == [15496, 995], "got %s" % got[0])
        report("gpt2_endoftext_special", c_encode(gpt2, ["<|endoftext|>"], True)[0] == [50256],
               "got %s" % c_encode(gpt2, ["<|endoftext|>"], True)[0])
        report("gpt2_endoftext_as_text", 50256 not in got[1] and got[1] == ref.encode(
            "<|endoftext|>"), "got %s" % got[1])
        got = c_encode(gpt2, texts)
        compare("gpt2_vs_reference", texts, got, [ref.encode(t) for t in texts])
        dec = c_decode(gpt2, got)
        compare("gpt2_roundtrip", texts, dec, [t.encode("utf-8") for t in texts])
        dec_ref = [ref.decode_bytes(ids) for ids in got]
        compare("gpt2_decode_vs_reference", texts, dec, dec_ref)
        rng = random.Random(7)
        special_texts = []
        for _ in range(100):
            parts = [rng.choice(texts)[:40] for _ in range(rng.randrange(1, 4))]
            special_texts.append("<|endoftext|>".join(parts) + rng.choice(["", "<|endoftext|>"]))
        got = c_encode(gpt2, special_texts, True)
        compare("gpt2_special_vs_reference", special_texts, got,
                [ref.encode(t, allow_special=True) for t in special_texts])
        compare("gpt2_special_roundtrip", special_texts, c_decode(gpt2, got),
                [t.encode("utf-8") for t in special_texts])
    else:
        skip("gpt2", "no gpt2/encoder.json in shared data")

    tok512 = os.path.join(SHARED, "llama2c", "tok512.bin")
    if os.path.exists(tok512):
        vocab, scores = load_llama2c(tok512)
        lookup = {}
        for i, v in enumerate(vocab):
            lookup.setdefault(v, i)
        got = c_encode(tok512, texts)
        compare("llama2c_vs_reference", texts, got,
                [llama2c_encode(vocab, scores, lookup, t.encode("utf-8")) for t in texts])
        compare("llama2c_roundtrip", texts, c_decode(tok512, c_encode(tok512, texts)),
                [t.encode("utf-8") for t in texts])
    else:
        skip("llama2c", "no llama2c/tok512.bin in shared data")

    got = c_encode("byte", texts)
    compare("byte_ids", texts, got, [list(t.encode("utf-8")) for t in texts])
    compare("byte_roundtrip", texts, c_decode("byte", got), [t.encode("utf-8") for t in texts])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
