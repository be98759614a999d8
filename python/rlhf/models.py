"""Model (generate, log-probs) and RewardModel (scores) over librlhf's C ABI."""
import codecs
import ctypes
import json

from . import _lib
from ._lib import RlhfError


def _each_byte(e):
    """A decode error handler: one U+FFFD per byte that is not part of a valid
    UTF-8 sequence, as `rlhf generate --format jsonl` writes completions."""
    return "\ufffd" * (e.end - e.start), e.end


codecs.register_error("rlhf.bytewise", _each_byte)


class LogProbs:
    """Log-probs of one completion after its prompt: tokens (the completion's
    ids, EOS last when add_eos), logprobs (one float per token), sum (their
    sum, in double precision), prompt_tokens (the prompt's ids, BOS included)."""

    __slots__ = ("tokens", "logprobs", "sum", "prompt_tokens")

    def __init__(self, tokens, logprobs, total, prompt_tokens):
        self.tokens, self.logprobs = tokens, logprobs
        self.sum, self.prompt_tokens = total, prompt_tokens

    def __repr__(self):
        return f"LogProbs(sum={self.sum:.6g}, tokens={len(self.tokens)})"


class Completion:
    """One sampled completion: text (str; each byte that is not part of valid
    UTF-8 becomes U+FFFD, as in `rlhf generate --format jsonl`), raw (the
    bytes), ended (a stop rule ended it: EOS, a stop id or a template's
    end-of-turn text; False: cut at max_new_tokens), prompt_index."""

    __slots__ = ("text", "raw", "ended", "prompt_index")

    def __init__(self, raw, ended, prompt_index):
        self.raw, self.ended, self.prompt_index = raw, ended, prompt_index
        self.text = raw.decode("utf-8", "rlhf.bytewise")

    def __repr__(self):
        return f"Completion({self.text!r}, ended={self.ended})"


def _strings(x, name):
    """(list of str, whether x was a single string)."""
    if isinstance(x, (str, bytes)):
        return [x], True
    try:
        items = list(x)
    except TypeError:
        raise TypeError(f"{name} must be a string or a list of strings") from None
    if not items:
        raise ValueError(f"{name} is empty")
    return items, False


class _Handle:
    """An owned C handle, freed by close() / the context manager / the GC."""

    _free = None

    def __init__(self):
        self._h = None

    def _handle(self):
        if not self._h:
            raise RlhfError(f"{type(self).__name__} is closed")
        return self._h

    def close(self):
        """Frees the C object (idempotent)."""
        if self._h:
            getattr(_lib.lib(), self._free)(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass


class Model(_Handle):
    """A model and its tokenizer, loaded as any --model is: a size name
    ("tiny", "gpt2", ...: a fresh model from seed), one of our checkpoints, a
    run directory (its final or newest checkpoint), an HF folder or a
    llama2.c .bin. tokenizer: as --tokenizer (None: the model's own)."""

    _free = "rlhf_capi_model_free"

    def __init__(self, spec, tokenizer=None, seed=1):
        super().__init__()
        self.spec = str(spec)
        L = _lib.lib()
        h = ctypes.c_void_p()
        rc = L.rlhf_capi_model_load(_lib.encode(spec, "spec"), _lib.encode(tokenizer, "tokenizer"),
                                    int(seed), ctypes.byref(h))
        _lib.check(rc, f"Model({self.spec!r})")
        self._h = h

    @classmethod
    def load(cls, spec, tokenizer=None, seed=1):
        """The same as Model(spec, tokenizer, seed)."""
        return cls(spec, tokenizer=tokenizer, seed=seed)

    @property
    def config(self):
        """The model's config (config.json's fields) as a dict."""
        return json.loads(_lib.take_string(_lib.lib().rlhf_capi_model_config(self._handle())))

    def generate(self, prompts, max_new_tokens=64, temperature=1.0, top_k=0, top_p=1.0,
                 num_return_sequences=1, seed=1, batch_size=32, add_bos=None,
                 allow_special=True, chat_template=None, details=False):
        """Samples completions, as `rlhf generate --prompt P` with the same
        flags does (same seed, same text). prompts: a string (returns a str,
        or a list when num_return_sequences > 1) or a list (returns a list,
        prompt-major: all samples of prompt 0 first). temperature 0 is greedy.
        add_bos: None = the tokenizer's convention. chat_template: a prompt is
        then one user message, rendered with the generation prompt.
        details=True returns Completion objects (text, raw bytes, ended)."""
        items, single = _strings(prompts, "prompts")
        L = _lib.lib()
        arr = _lib.string_array(items, "prompts")
        out = ctypes.c_void_p()
        bos = -1 if add_bos is None else int(bool(add_bos))
        rc = L.rlhf_capi_generate(self._handle(), arr, len(items), int(max_new_tokens),
                                  float(temperature), int(top_k), float(top_p),
                                  int(num_return_sequences), int(seed), int(batch_size), bos,
                                  int(bool(allow_special)),
                                  _lib.encode(chat_template, "chat_template"), ctypes.byref(out))
        _lib.check(rc, "generate")
        try:
            res = []
            for i in range(L.rlhf_capi_texts_count(out)):
                n = ctypes.c_size_t()
                p = L.rlhf_capi_texts_get(out, i, ctypes.byref(n))
                raw = ctypes.string_at(p, n.value) if n.value else b""
                res.append(Completion(raw, bool(L.rlhf_capi_texts_ended(out, i)),
                                      i // int(num_return_sequences)))
        finally:
            L.rlhf_capi_texts_free(out)
        if not details:
            res = [c.text for c in res]
        return res[0] if single and int(num_return_sequences) == 1 else res

    def logprobs(self, prompts, completions, add_eos=True, batch_size=16):
        """Per-token log-probs of each completion after its prompt, tokenized as
        the trainers tokenize prompt/completion data (BOS by the tokenizer's
        convention; EOS after the completion when add_eos, as DPO scores it).
        A string pair returns one LogProbs, lists return a list of them."""
        ps, single = _strings(prompts, "prompts")
        cs, single_c = _strings(completions, "completions")
        if len(ps) != len(cs):
            raise ValueError(f"{len(ps)} prompts but {len(cs)} completions")
        L = _lib.lib()
        out = ctypes.c_void_p()
        rc = L.rlhf_capi_logprobs(self._handle(), _lib.string_array(ps, "prompts"),
                                  _lib.string_array(cs, "completions"), len(ps), int(bool(add_eos)),
                                  int(batch_size), ctypes.byref(out))
        _lib.check(rc, "logprobs")
        try:
            res = []
            for i in range(L.rlhf_capi_logprobs_count(out)):
                n, k = L.rlhf_capi_logprobs_n_tokens(out, i), L.rlhf_capi_logprobs_n_prompt(out, i)
                toks = L.rlhf_capi_logprobs_tokens(out, i)
                vals = L.rlhf_capi_logprobs_values(out, i)
                pt = L.rlhf_capi_logprobs_prompt(out, i)
                res.append(LogProbs([toks[j] for j in range(n)], [vals[j] for j in range(n)],
                                    L.rlhf_capi_logprobs_sum(out, i), [pt[j] for j in range(k)]))
        finally:
            L.rlhf_capi_logprobs_free(out)
        return res[0] if single and single_c else res

    def __repr__(self):
        return f"Model({self.spec!r}{'' if self._h else ', closed'})"


class RewardModel(_Handle):
    """A trained reward model or ensemble, as --reward_model / the rm: reward
    source takes it: a checkpoint with a score head, an `rlhf rm` run
    directory, or a directory with ensemble.json."""

    _free = "rlhf_capi_reward_model_free"

    def __init__(self, path, tokenizer=None):
        super().__init__()
        self.path = str(path)
        h = ctypes.c_void_p()
        rc = _lib.lib().rlhf_capi_reward_model_load(_lib.encode(path, "path"),
                                                    _lib.encode(tokenizer, "tokenizer"),
                                                    ctypes.byref(h))
        _lib.check(rc, f"RewardModel({self.path!r})")
        self._h = h

    @property
    def members(self):
        """Ensemble members (score heads in all); 1 for a single reward model."""
        return _lib.lib().rlhf_capi_reward_model_members(self._handle())

    def score(self, prompts, completions, batch_size=32, per_member=False):
        """The reward of each prompt + completion (the mean over an ensemble's
        members, as `rlhf score` prints it as "score"); per_member=True gives a
        list of K scores per completion. Strings give one value, lists a list."""
        ps, single = _strings(prompts, "prompts")
        cs, single_c = _strings(completions, "completions")
        if len(ps) != len(cs):
            raise ValueError(f"{len(ps)} prompts but {len(cs)} completions")
        L = _lib.lib()
        K = self.members
        out = (ctypes.c_float * (len(ps) * K))()
        rc = L.rlhf_capi_reward_model_score(self._handle(), _lib.string_array(ps, "prompts"),
                                            _lib.string_array(cs, "completions"), len(ps),
                                            int(batch_size), out)
        _lib.check(rc, "score")
        rows = [[out[i * K + k] for k in range(K)] for i in range(len(ps))]
        res = rows if per_member else [_mean(r) for r in rows]
        return res[0] if single and single_c else res

    def __repr__(self):
        return f"RewardModel({self.path!r}{'' if self._h else ', closed'})"


def _mean(xs):
    return sum(xs) / len(xs)
