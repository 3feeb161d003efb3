"""A VITS voice model cut in two at its decoder, so a sentence's audio can be decoded in pieces.

Piper's ONNX graph runs text encoder, duration predictor and flow (``/enc_p``, ``/dp``,
``/flow``: about a third of the work) and then the HiFi-GAN decoder (``/dec``: two thirds) in
one call. The decoder is a stack of convolutions over the latent frames (256 samples each), so
it can run on a window of frames: with :data:`CONTEXT` frames of real latent on each side and
that margin's audio cut off again, the samples are the whole-sentence decode's to within 1e-6.
The first audio then needs the front part plus a short first window, not the whole sentence.

The cut is made on the serialised model with a minimal protobuf reader (the ``onnx`` package
is not a dependency): node, initializer and input/output entries are copied byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator

DECODER_PREFIX = "/dec/"
CONTEXT = 16
"""Latent frames decoded on each side of a window and discarded (12 is already exact)."""


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, tuple[int, int], int, int]]:
    """(field number, (start, end) of a length-delimited value or (value, 0), raw start, raw end)."""
    i = start
    while i < end:
        raw = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            span = (value, 0)
        elif wire == 2:
            size, i = _varint(buf, i)
            span = (i, i + size)
            i += size
        elif wire in (1, 5):
            span = (i, 0)
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, span, raw, i


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _uvarint(number << 3 | 2) + _uvarint(len(payload)) + payload


def _float_tensor(name: str) -> bytes:
    """ValueInfoProto {name, type {tensor_type {elem_type: FLOAT}}} (shape left to the runtime)."""
    return _field(1, name.encode()) + _field(2, _field(1, _uvarint(1 << 3 | 0) + _uvarint(1)))


# ModelProto.graph; GraphProto.node, .name, .initializer, .input, .output; NodeProto.input,
# .output, .name; TensorProto.name; ValueInfoProto.name.
_GRAPH, _NODE, _NAME, _INITIALIZER, _INPUT, _OUTPUT, _TENSOR_NAME = 7, 1, 2, 5, 11, 12, 8


def split_model(data: bytes) -> tuple[bytes, bytes, str]:
    """``(front, decoder, latent)``: two ONNX models; ``front`` takes the original inputs and
    returns the tensor ``latent``, ``decoder`` takes ``latent`` and returns the original output.

    Raises ValueError when the graph has no ``/dec/`` part fed by exactly one tensor."""
    buf = memoryview(data)

    def text(span: tuple[int, int]) -> str:
        return bytes(buf[span[0] : span[1]]).decode()

    top = list(_fields(buf, 0, len(buf)))
    graph = next((span for number, span, _, _ in top if number == _GRAPH), None)
    if graph is None:
        raise ValueError("no graph in the model")
    nodes: list[tuple[list[str], list[str], str, bytes]] = []
    initializers: dict[str, bytes] = {}
    inputs: list[bytes] = []
    outputs: list[tuple[str, bytes]] = []
    name = b""
    for number, span, raw_start, raw_end in _fields(buf, *graph):
        raw = bytes(buf[raw_start:raw_end])
        if number == _NODE:
            ins: list[str] = []
            outs: list[str] = []
            node_name = ""
            for sub, sub_span, _, _ in _fields(buf, *span):
                if sub == 1:
                    ins.append(text(sub_span))
                elif sub == 2:
                    outs.append(text(sub_span))
                elif sub == 3:
                    node_name = text(sub_span)
            nodes.append((ins, outs, node_name, raw))
        elif number == _INITIALIZER:
            key = next(text(s) for sub, s, _, _ in _fields(buf, *span) if sub == _TENSOR_NAME)
            initializers[key] = raw
        elif number == _INPUT:
            inputs.append(raw)
        elif number == _OUTPUT:
            key = next(text(s) for sub, s, _, _ in _fields(buf, *span) if sub == 1)
            outputs.append((key, raw))
        elif number == _NAME:
            name = raw

    producer = {out: index for index, (_, outs, _, _) in enumerate(nodes) for out in outs}
    decoder_nodes = {index for index, node in enumerate(nodes) if node[2].startswith(DECODER_PREFIX)}
    fed_from_outside = {
        tensor
        for index in decoder_nodes
        for tensor in nodes[index][0]
        if tensor
        and tensor not in initializers
        and producer.get(tensor) not in decoder_nodes
        and not (tensor in producer and nodes[producer[tensor]][0] == [])  # a Constant node
    }
    if len(fed_from_outside) != 1:
        raise ValueError(f"the decoder is fed by {len(fed_from_outside)} tensors, not one")
    latent = fed_from_outside.pop()

    def needed(targets: list[str], stop: str) -> list[int]:
        keep: set[int] = set()
        todo = list(targets)
        while todo:
            tensor = todo.pop()
            index = producer.get(tensor)
            if tensor == stop or index is None or index in keep:
                continue
            keep.add(index)
            todo.extend(nodes[index][0])
        return sorted(keep)  # the original order is a topological one

    def model(keep: list[int], graph_inputs: list[bytes], graph_outputs: list[bytes]) -> bytes:
        used = {tensor for index in keep for tensor in nodes[index][0]}
        body = b"".join(nodes[index][3] for index in keep) + name
        body += b"".join(raw for key, raw in initializers.items() if key in used)
        body += b"".join(graph_inputs) + b"".join(graph_outputs)
        head = b"".join(bytes(buf[s:e]) for number, _, s, e in top if number != _GRAPH)
        return head + _field(_GRAPH, body)

    front = needed([latent], "")
    decoder = needed([key for key, _ in outputs], latent)
    produced = {tensor for index in decoder for tensor in nodes[index][1]}
    external = {
        tensor
        for index in decoder
        for tensor in nodes[index][0]
        if tensor and tensor not in produced and tensor not in initializers
    }
    if external != {latent}:
        raise ValueError(f"the decoder part also needs {sorted(external - {latent})}")
    return (
        model(front, inputs, [_field(_OUTPUT, _float_tensor(latent))]),
        model(decoder, [_field(_INPUT, _float_tensor(latent))], [raw for _, raw in outputs]),
        latent,
    )


def windows(frames: int, *, first: int = 24, growth: int = 4) -> list[tuple[int, int]]:
    """Latent frame ranges to decode one after another: a short first window (24 frames, ~0.28 s
    at 22.05 kHz), then each ``growth`` times longer, so a window always takes less time to
    decode than the audio before it lasts. A remainder under twice the next window is decoded
    with it, and a sentence under twice ``first`` in one piece (each cut costs 2 x CONTEXT)."""
    out: list[tuple[int, int]] = []
    start, size = 0, first
    while frames - start > 2 * size:
        out.append((start, start + size))
        start, size = start + size, size * growth
    out.append((start, frames))
    return out
