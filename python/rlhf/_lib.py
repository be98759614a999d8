"""Loading librlhf.so and declaring its C ABI (src/cli/capi.h) for ctypes.

Where the library is looked for, first found wins:
  1. the environment variable RLHF_LIB (a path to a librlhf.so);
  2. librlhf.so inside this package (copied there by `pip install ./python`);
  3. ../build/librlhf.so relative to the source tree (python/rlhf/ in a
     checkout where `make` has run), or $RLHF_BUILD/librlhf.so when set.
"""
import ctypes
import os
import threading

ABI_VERSION = 1

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
_lib = None
_lock = threading.Lock()


class RlhfError(RuntimeError):
    """A failure reported by librlhf: the message is the C library's own."""


def candidates():
    """The paths tried, in order (the first that exists is loaded)."""
    out = []
    if os.environ.get("RLHF_LIB"):
        return [os.environ["RLHF_LIB"]]
    out.append(os.path.join(_HERE, "librlhf.so"))
    build = os.environ.get("RLHF_BUILD")
    if build:
        out.append(os.path.join(build if os.path.isabs(build) else os.path.join(_ROOT, build),
                                "librlhf.so"))
    out.append(os.path.join(_ROOT, "build", "librlhf.so"))
    return out


def library_path():
    """The path of the librlhf.so that is (or would be) loaded."""
    tried = candidates()
    for p in tried:
        if os.path.isfile(p):
            return os.path.abspath(p)
    raise RlhfError("librlhf.so not found (tried " + ", ".join(tried) +
                    "): run `make` in the repository, or set RLHF_LIB to its path")


c_int, c_float, c_double, c_char_p = ctypes.c_int, ctypes.c_float, ctypes.c_double, ctypes.c_char_p
c_void_p, c_u64, c_size_t = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
P = ctypes.POINTER

# name: (restype, argtypes)
_SIGNATURES = {
    "rlhf_capi_last_error": (c_char_p, []),
    "rlhf_capi_abi_version": (c_int, []),
    "rlhf_capi_free": (None, [c_void_p]),
    "rlhf_capi_model_load": (c_int, [c_char_p, c_char_p, c_u64, P(c_void_p)]),
    "rlhf_capi_model_free": (None, [c_void_p]),
    "rlhf_capi_model_config": (c_void_p, [c_void_p]),
    "rlhf_capi_texts_count": (c_int, [c_void_p]),
    "rlhf_capi_texts_get": (c_void_p, [c_void_p, c_int, P(c_size_t)]),
    "rlhf_capi_texts_ended": (c_int, [c_void_p, c_int]),
    "rlhf_capi_texts_free": (None, [c_void_p]),
    "rlhf_capi_generate": (c_int, [c_void_p, P(c_char_p), c_int, c_int, c_float, c_int, c_float,
                                   c_int, c_u64, c_int, c_int, c_int, c_char_p, P(c_void_p)]),
    "rlhf_capi_logprobs": (c_int, [c_void_p, P(c_char_p), P(c_char_p), c_int, c_int, c_int,
                                   P(c_void_p)]),
    "rlhf_capi_logprobs_count": (c_int, [c_void_p]),
    "rlhf_capi_logprobs_n_tokens": (c_int, [c_void_p, c_int]),
    "rlhf_capi_logprobs_tokens": (P(c_int), [c_void_p, c_int]),
    "rlhf_capi_logprobs_values": (P(c_float), [c_void_p, c_int]),
    "rlhf_capi_logprobs_n_prompt": (c_int, [c_void_p, c_int]),
    "rlhf_capi_logprobs_prompt": (P(c_int), [c_void_p, c_int]),
    "rlhf_capi_logprobs_sum": (c_double, [c_void_p, c_int]),
    "rlhf_capi_logprobs_free": (None, [c_void_p]),
    "rlhf_capi_reward_model_load": (c_int, [c_char_p, c_char_p, P(c_void_p)]),
    "rlhf_capi_reward_model_free": (None, [c_void_p]),
    "rlhf_capi_reward_model_members": (c_int, [c_void_p]),
    "rlhf_capi_reward_model_score": (c_int, [c_void_p, P(c_char_p), P(c_char_p), c_int, c_int,
                                             P(c_float)]),
    "rlhf_capi_run": (c_int, [c_int, P(c_char_p), c_int, P(c_void_p), P(c_void_p)]),
}


def lib():
    """The loaded library (loaded on first use)."""
    global _lib
    with _lock:
        if _lib is None:
            path = library_path()
            try:
                handle = ctypes.CDLL(path)
            except OSError as e:
                raise RlhfError(f"cannot load {path}: {e}") from None
            for name, (res, args) in _SIGNATURES.items():
                try:
                    f = getattr(handle, name)
                except AttributeError:
                    raise RlhfError(f"{path} has no {name}: a librlhf.so older than this "
                                    "binding; rebuild it (make)") from None
                f.restype, f.argtypes = res, args
            v = handle.rlhf_capi_abi_version()
            if v != ABI_VERSION:
                raise RlhfError(f"{path} speaks C ABI version {v}, this binding {ABI_VERSION}: "
                                "rebuild the library or reinstall the binding")
            _lib = handle
        return _lib


def last_error():
    msg = lib().rlhf_capi_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(rc, what=""):
    """Raises RlhfError with the C message when rc != 0."""
    if rc != 0:
        msg = last_error() or f"failed with status {rc}"
        raise RlhfError(f"{what}: {msg}" if what else msg)


def encode(s, name):
    """A str (or bytes, or os.PathLike) as bytes for a char * argument; None stays None."""
    if s is None:
        return None
    if isinstance(s, os.PathLike):
        s = os.fspath(s)
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, str):
        b = s.encode("utf-8")
    else:
        raise TypeError(f"{name} must be a string, not {type(s).__name__}")
    if b"\0" in b:
        raise ValueError(f"{name} holds a NUL character")
    return b


def string_array(items, name):
    """A list of strings as a char *[] (with the bytes kept alive by the array)."""
    enc = [encode(x, f"{name}[{i}]") for i, x in enumerate(items)]
    for i, b in enumerate(enc):
        if b is None:
            raise TypeError(f"{name}[{i}] is None")
    arr = (c_char_p * max(1, len(enc)))(*enc)
    return arr


def take_string(ptr):
    """A malloc'd char * from the library as str (freed)."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib().rlhf_capi_free(ptr)
