"""Token ids from OpenAI's own CLIP tokenizer, the reference for services/inference/test/tokenizer.

Runs clip/simple_tokenizer.py of github.com/openai/CLIP (with its bpe_simple_vocab_16e6.txt.gz) and ftfy
(github.com/rspeer/python-ftfy) from source checkouts, with the `regex` module installed:

    python3 scripts/clip-reference-ids.py CLIP_CHECKOUT FTFY_CHECKOUT < prompts.json

Reads a JSON list of strings and prints a JSON object: each string to its ids (no BOS/EOS).
"""
import json
import sys

sys.path[:0] = [sys.argv[1], sys.argv[2]]

import ftfy  # noqa: E402
from clip.simple_tokenizer import SimpleTokenizer  # noqa: E402

tokenizer = SimpleTokenizer()
texts = json.load(sys.stdin)
print(json.dumps({"ftfy": ftfy.__version__, "ids": {t: tokenizer.encode(t) for t in texts}}, ensure_ascii=False))
