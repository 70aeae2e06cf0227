"""One declaration per task (booster.tasks): what each declares, and that everything reads it."""

from __future__ import annotations

import pytest

from booster.errors import BoosterError
from booster.tasks import (TASKS, USER_TASKS, agnews_prompt, get_task, gsm8k_prompt, parse_tasks, sst2_prompt,
                           user_task)


def test_every_task_declares_its_pool_metric_and_rule():
    assert list(TASKS) == ["hs", "hs_val", "advbench", "sst2", "agnews", "gsm8k", "over_refusal", "over_refusal_val"]
    assert USER_TASKS == ("sst2", "agnews", "gsm8k")
    for name, t in TASKS.items():
        assert t.name == name and t.eval_pool and t.rule and t.description
        # an accuracy task states how an answer is read; the others are scored by judge or refusal phrases
        assert (t.correct is not None) == (t.metric == "accuracy"), name
        # a user task is fine-tuned on: it has a train pool and a prompt template
        assert (t.train_pool is not None) == (t.template is not None) == (name in USER_TASKS), name
    assert [TASKS[n].train_pool for n in USER_TASKS] == ["sst2_train", "agnews_train", "gsm8k_train"]
    assert {n: TASKS[n].max_new_tokens for n in USER_TASKS} == {"sst2": 8, "agnews": 8, "gsm8k": 256}


@pytest.mark.parametrize("name, answer, gold, correct", [
    ("sst2", "Positive.", "positive", True),
    ("sst2", "The sentiment is negative, not positive", "negative", True),  # the first label word counts
    ("sst2", "I cannot tell", "positive", False),
    ("agnews", "This is about science.", "Sci/Tech", True),  # an alias of sci/tech
    ("agnews", "Sports", "World", False),
    ("gsm8k", "3 + 4 = 7, so the answer is 18.00", "18", True),
    ("gsm8k", "#### 1,080", "1080", True),
    ("gsm8k", "it is 17, then 18", "17", False),  # no marker: the last number
])
def test_each_user_task_reads_answers_by_its_stated_rule(name, answer, gold, correct):
    assert TASKS[name].correct(answer, gold) is correct


def test_templates_render_the_prepared_prompts_unchanged():
    # the pools' hashes depend on these strings: a changed template is a changed data set
    assert sst2_prompt(" a fine film ") == ("Analyze the sentiment of the input, and respond only positive or "
                                             "negative.\n\nInput: a fine film")
    assert agnews_prompt("Stocks fell.", ["World", "Business"]) == (
        "Categorize the news article given in the input into one of the 2 categories:\n\n"
        "World\nBusiness\n\nInput: Stocks fell.")
    assert gsm8k_prompt(" How many? ") == "How many?"


def test_unknown_task_names_are_one_line_errors():
    with pytest.raises(BoosterError, match=r"^unknown task 'mnli' \(valid tasks: hs, hs_val, advbench, "):
        get_task("mnli")
    with pytest.raises(BoosterError, match=r"^unknown task 'hs' \(valid tasks: sst2, agnews, gsm8k\)$"):
        user_task("hs")
    with pytest.raises(BoosterError, match="unknown task 'mnli'; choose from"):
        parse_tasks("hs,mnli")
    assert [t.name for t in parse_tasks("advbench, sst2,advbench")] == ["advbench", "sst2"]
