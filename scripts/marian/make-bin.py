#!/usr/bin/env python3
"""The `pytorch_model.bin` of a tiny Marian teacher (make-tiny.py's), for the import's pickle path.

Older OPUS-MT uploads have only `pytorch_model.bin`: `transformers` 4.x's
`save_pretrained(safe_serialization=False)`, which is `torch.save(model.state_dict())` in the
zip format, tied weights kept as views of one storage. transformers 5 no longer writes it, so this
does what it did, then checks that `MarianMTModel.from_pretrained` reads the file back to the same
weights and the same greedy output as the safetensors model.

    MARIAN_VENV/bin/python scripts/marian/make-bin.py FIXTURE_DIR OUT_DIR
      (scripts/marian/make-tiny.sh runs it for shared-swish)

OUT_DIR gets the `pytorch_model.bin` only; the test copies the rest of FIXTURE_DIR beside it.
"""

import os
import shutil
import sys
import tempfile

import torch
from transformers import MarianMTModel, MarianTokenizer


def main(fixture, out):
    model = MarianMTModel.from_pretrained(fixture).eval()
    state = model.state_dict()
    os.makedirs(out, exist_ok=True)
    torch.save(state, f"{out}/pytorch_model.bin")

    # Read back the way transformers reads a hub download that has only the .bin.
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(fixture):
            if f != "model.safetensors":
                shutil.copy(f"{fixture}/{f}", tmp)
        shutil.copy(f"{out}/pytorch_model.bin", tmp)
        again = MarianMTModel.from_pretrained(tmp).eval()
        for name, tensor in again.state_dict().items():
            assert torch.equal(tensor, state[name]), name
        tok = MarianTokenizer.from_pretrained(fixture)
        batch = tok(["A man is riding a bicycle.", "Two dogs play in the snow."], return_tensors="pt", padding=True)
        with torch.no_grad():
            a = model.generate(**batch, num_beams=1, do_sample=False)
            b = again.generate(**batch, num_beams=1, do_sample=False)
        assert torch.equal(a, b)
    shared = len({t.untyped_storage().data_ptr() for t in state.values()})
    print(f"make-bin: {out}/pytorch_model.bin: {len(state)} tensors in {shared} storages")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make-bin.py FIXTURE_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
