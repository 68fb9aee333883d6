"""One calibration as one file: export with its records, import into the user folder, never overwriting."""
import json

import pytest

from vramplan.errors import VramplanError
from vramplan.profiles import find_gpu
from vramplan.resources import data_dir
from vramplan.store.calibrations import Calibrations, Origin
from vramplan.store.share import export_document, import_into, read_export, records_of, write_export

from .helpers import GiB, changed_fit, shipped_fit


def test_export_then_import_carries_the_fit_and_its_records(tmp_path, user_folder):
    fit = shipped_fit()
    records = records_of(data_dir("calibration"), fit)
    assert records["runs"] and records["multi_gpu"]
    path = tmp_path / "h200.json"
    write_export(path, export_document(fit, Origin("shipped", data_dir("calibration")), records), force=False)
    read_fit, read_records = read_export(path)
    assert read_fit == fit and read_records == records
    written = import_into(user_folder, read_fit, read_records, force=False)
    assert {p.relative_to(user_folder).as_posix() for p in written} == {
        "fits/nvidia-h200.json", "runs/nvidia-h200.jsonl", "multi_gpu/nvidia-h200.jsonl"}
    assert records_of(user_folder, fit) == records
    assert Calibrations.shipped().params(find_gpu("H200")).source.startswith("your calibration in")


def test_import_never_overwrites_without_force(user_folder):
    import_into(user_folder, changed_fit(3 * GiB), {"runs": [{"run_key": "a"}]}, force=False)
    before = (user_folder / "fits" / "nvidia-h200.json").read_text()
    with pytest.raises(VramplanError, match="already holds a calibration of NVIDIA H200"):
        import_into(user_folder, changed_fit(4 * GiB), {}, force=False)
    assert (user_folder / "fits" / "nvidia-h200.json").read_text() == before
    import_into(user_folder, changed_fit(4 * GiB), {}, force=True)
    assert json.loads((user_folder / "fits" / "nvidia-h200.json").read_text())["params"]["context_bytes"] == 4 * GiB
    assert not (user_folder / "runs" / "nvidia-h200.jsonl").exists()  # the replaced fit's records went with it


def test_own_records_without_a_fit_are_not_overwritten_either(user_folder):
    runs = user_folder / "runs" / "nvidia-h200.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text('{"run_key": "mine"}\n')
    with pytest.raises(VramplanError, match="already holds"):
        import_into(user_folder, changed_fit(), {"runs": [{"run_key": "theirs"}]}, force=False)
    assert runs.read_text() == '{"run_key": "mine"}\n' and not (user_folder / "fits").exists()


def test_export_refuses_to_replace_a_file_without_force(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("keep")
    doc = export_document(shipped_fit(), None, {})
    with pytest.raises(VramplanError, match="already exists"):
        write_export(path, doc, force=False)
    assert path.read_text() == "keep"
    write_export(path, doc, force=True)
    assert json.loads(path.read_text())["fit"]["gpu_name"] == "NVIDIA H200"


@pytest.mark.parametrize("text, message", [
    ("nope", "cannot be read as JSON"),
    (json.dumps({"format": "other", "fit": {}}), "format 'other'"),
    (json.dumps({"format": "vramplan-calibration", "version": 99, "fit": {}}), "newer than this vramplan"),
    (json.dumps({"format": "vramplan-calibration", "version": 1, "fit": {"gpu_name": "X"}}), "no params"),
    (json.dumps({"fit": shipped_fit(), "records": []}), "records is not an object"),
    (json.dumps({"fit": shipped_fit(), "records": {"runs": [1]}}), "records.runs"),
], ids=["not-json", "other-format", "newer-version", "fit-without-params", "records-list", "record-not-object"])
def test_a_bad_import_file_is_one_line_and_writes_nothing(tmp_path, user_folder, text, message):
    path = tmp_path / "in.json"
    path.write_text(text)
    with pytest.raises(VramplanError, match=message):
        read_export(path)
    assert not user_folder.exists()


def test_a_bare_fit_file_imports_without_records(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(shipped_fit()))
    fit, records = read_export(path)
    assert fit["gpu_name"] == "NVIDIA H200" and records == {"runs": [], "multi_gpu": []}
