"""The header the evaluate and attack records share: written alike by both scripts, read back from either
record, and from records of the shape earlier versions wrote (records on disk are not rewritten)."""

import json

import pytest
from test_attacks import FGSM, run_attack_script
from test_evaluation import MODEL_CLASSES, image_folder, ranking_checkpoint, run_evaluate

from imagenet_sd.evaluate.records import header, read_record

# The keys both records have always written: a reader of results already on disk relies on them.
EVALUATE_KEYS = {"run", "evalset", "n_images", "n_model_classes", "checkpoint", "eval_resolution", "preprocessing"}
ATTACK_KEYS = {"model", "evalset", "attack", "settings", "subset", "checkpoint", "resolution", "preprocessing"}


def test_both_scripts_write_the_same_header_and_the_reader_reads_it_from_either(tmp_path):
    checkpoint = ranking_checkpoint(tmp_path / "c.pt", MODEL_CLASSES, list(range(1, 8)))
    images = image_folder(tmp_path / "set", {MODEL_CLASSES[0]: 4, MODEL_CLASSES[-1]: 4})
    run_evaluate(tmp_path / "e.json", checkpoint, images, "set", {})
    run_attack_script(checkpoint, images, tmp_path / "a.json", attack="fgsm", settings=FGSM, epsilon=1, subset=4)
    (evaluated, evaluation), (attacked, attack) = read_record(tmp_path / "e.json"), read_record(tmp_path / "a.json")
    assert EVALUATE_KEYS | {"versions"} <= set(evaluation) and ATTACK_KEYS | {"versions"} <= set(attack)
    assert (evaluated.model, evaluated.evalset, evaluated.n_images) == ("r", "set", 8)
    assert (attacked.model, attacked.evalset, attacked.n_images) == ("m", "set", 4)
    assert evaluated.resolution == attacked.resolution == 32
    assert evaluated.preprocessing == attacked.preprocessing and evaluated.versions == attacked.versions
    # the evaluate record's checkpoint block adds the training step to the fields both write
    assert evaluated.checkpoint == {**attacked.checkpoint, "step": 0}
    assert attacked.checkpoint["path"] == str(checkpoint) and len(attacked.checkpoint["sha256"]) == 64


def test_a_record_of_an_earlier_shape_is_read_with_what_it_holds():
    # an evaluate record from before the checkpoint block, resolution and preprocessing were recorded
    old = header({"run": "syn", "evalset": {"name": "val"}, "top1": 50.0, "n_images": 10})
    assert (old.model, old.evalset, old.n_images) == ("syn", "val", 10)
    assert (old.checkpoint, old.resolution, old.preprocessing, old.versions) == (None, None, None, None)
    attack = header({"model": "syn", "evalset": "val", "subset": {"size": 8, "seed": 0, "n_images": 8}})
    assert (attack.model, attack.evalset, attack.n_images, attack.resolution) == ("syn", "val", 8, None)


@pytest.mark.parametrize(("record", "missing"), [({"evalset": "val"}, "`model` or `run`"), ({"run": "r"}, "`evalset`")])
def test_a_file_that_is_no_record_is_named(tmp_path, record, missing):
    path = tmp_path / "stray.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=rf"stray\.json: not an evaluate or attack record \(it has no {missing}\)"):
        read_record(path)
