"""Minimal safetensors reader/writer with struct + json + numpy (no safetensors package).

Format: 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian tensor bytes (offsets relative to the end of the header).
"""
import json
import struct

import numpy as np

_DT = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAME = {np.dtype(v).newbyteorder("<"): k for k, v in _DT.items()}


def load(path):
    """Returns {name: numpy array} (copies, little-endian, native dtype)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} past end of file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DT:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        shape = tuple(int(s) for s in info["shape"])
        b, e = info["data_offsets"]
        npdt = np.dtype(_DT[dt]).newbyteorder("<")
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * npdt.itemsize or base + e > len(data):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{e} for {dt}{list(shape)}")
        arr = np.frombuffer(data, dtype=npdt, count=count, offset=base + b)
        out[name] = arr.reshape(shape).astype(npdt.newbyteorder("="), copy=True)
    return out


def save(path, tensors, metadata=None):
    """Writes {name: numpy array} in sorted-name order."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        le = a.astype(a.dtype.newbyteorder("<"), copy=False)
        key = np.dtype(le.dtype).newbyteorder("<")
        if key not in _NAME:
            raise ValueError(f"tensor {name}: unsupported dtype {a.dtype}")
        raw = le.tobytes()
        header[name] = {"dtype": _NAME[key], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for raw in blobs:
            f.write(raw)
