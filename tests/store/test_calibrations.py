"""Shipped fits with the user's on top: which one a GPU plans with, and what its calibration line says."""
import json

import pytest

from vramplan.errors import VramplanError
from vramplan.profiles import find_gpu
from vramplan.store import user
from vramplan.store.calibrations import Calibrations, calibration_for

from .helpers import GiB, changed_fit, shipped_fit, write_fit

H200, T4 = find_gpu("H200"), find_gpu("T4")


def test_without_user_fits_the_shipped_ones_are_used_as_before():
    params = Calibrations.shipped().params(H200)
    assert params == Calibrations.package().params(H200)
    assert params.source.startswith("calibrated on NVIDIA H200 (60 runs, peak LOAO MAE")
    assert Calibrations.shipped().name == "shipped"


def test_the_user_folder_is_the_data_dir_env_var(user_folder):
    assert user.user_calibration_dir() == user_folder


def test_without_the_env_var_the_folder_is_platformdirs_user_data(monkeypatch):
    import platformdirs
    monkeypatch.delenv("VRAMPLAN_DATA_DIR")
    assert user.user_calibration_dir() == platformdirs.user_data_path("vramplan", appauthor=False) / "calibration"


def test_a_user_fit_replaces_the_shipped_one_for_its_gpu_only(user_folder):
    write_fit(user_folder, changed_fit(3 * GiB, runs=12))
    cal = Calibrations.shipped()
    assert cal.params(H200).context_bytes == 3 * GiB
    assert cal.params(H200).source.startswith(f"your calibration in {user.display_path(user_folder)} (12 runs, peak LOAO")
    h100 = cal.params(find_gpu("H100-80GB"))
    assert h100 == Calibrations.package().params(find_gpu("H100-80GB"))
    assert sum(f["gpu_name"] == "NVIDIA H200" for f in cal.fits) == 1


def test_a_user_fit_lent_to_an_uncalibrated_gpu_says_whose_it_is(user_folder):
    fit = changed_fit()
    fit.update(gpu_name="NVIDIA Tesla T4 Custom", profile=None, architecture="turing", compute_capability=7.5,
               memory_mib=15360)
    write_fit(user_folder, fit)
    source = Calibrations.shipped().params(find_gpu("RTX-2080Ti")).source
    assert source.startswith("nearest calibrated GPU: NVIDIA Tesla T4 Custom, your calibration in")
    assert "RTX-2080Ti itself is not calibrated" in source


def test_flag_beats_env_beats_user_folder(user_folder, tmp_path, monkeypatch):
    write_fit(user_folder, changed_fit(3 * GiB))
    env, flag = tmp_path / "env", tmp_path / "flag"
    write_fit(env, changed_fit(4 * GiB))
    write_fit(flag, changed_fit(5 * GiB))
    assert Calibrations.shipped().params(H200).context_bytes == 3 * GiB
    monkeypatch.setenv("VRAMPLAN_CALIBRATION", str(env))
    params = Calibrations.shipped().params(H200)
    assert params.context_bytes == 4 * GiB and params.source.startswith(f"VRAMPLAN_CALIBRATION={env} (12 runs")
    with user.using_calibration(flag):
        params = Calibrations.shipped().params(H200)
        assert params.context_bytes == 5 * GiB and params.source.startswith(f"--calibration {flag} (12 runs")
    assert Calibrations.shipped().params(H200).context_bytes == 4 * GiB  # the flag ends with its command
    assert Calibrations.for_user(flag).params(H200).context_bytes == 5 * GiB


def test_an_exported_file_can_stand_for_a_folder(tmp_path):
    path = tmp_path / "h200.json"
    path.write_text(json.dumps({"format": "vramplan-calibration", "version": 1, "fit": changed_fit(6 * GiB),
                                "records": {}}))
    assert Calibrations.for_user(path).params(H200).context_bytes == 6 * GiB


def test_an_explicit_folder_alone_is_still_just_that_folder(user_folder):
    write_fit(user_folder, changed_fit(3 * GiB))
    from vramplan.resources import data_dir
    assert calibration_for(H200, str(data_dir("calibration"))).context_bytes == shipped_fit()["params"]["context_bytes"]
    assert calibration_for(H200).context_bytes == 3 * GiB


@pytest.mark.parametrize("where", ["env", "flag"])
def test_a_named_calibration_that_is_not_there_is_an_error(tmp_path, monkeypatch, where):
    missing = tmp_path / "nowhere"
    if where == "env":
        monkeypatch.setenv("VRAMPLAN_CALIBRATION", str(missing))
        with pytest.raises(VramplanError, match="VRAMPLAN_CALIBRATION .*no such file or folder"):
            Calibrations.shipped()
    else:
        with pytest.raises(VramplanError, match="--calibration .*no such file"):
            Calibrations.for_user(missing)
    monkeypatch.delenv("VRAMPLAN_CALIBRATION", raising=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VramplanError, match="no fits/"):
        Calibrations.for_user(tmp_path / "empty")


BAD_FITS = {
    "not json": "{",
    "a list": "[]",
    "no gpu name": json.dumps({"params": {}}),
    "params not an object": json.dumps({"gpu_name": "X", "params": [1]}),
    "negative bytes": json.dumps({"gpu_name": "X", "params": {"context_bytes": -1}}),
    "bytes as text": json.dumps({"gpu_name": "X", "params": {"context_bytes": "1GB"}}),
    "bool bytes": json.dumps({"gpu_name": "X", "params": {"workspace_bytes": True}}),
    "driver share 1": json.dumps({"gpu_name": "X", "params": {"driver_reserved_fraction": 1.0}}),
    "runs text": json.dumps({"gpu_name": "X", "params": {}, "runs": "many"}),
    "stack slack list": json.dumps({"gpu_name": "X", "params": {"stack_slack_bytes": [1]}}),
    "memory text": json.dumps({"gpu_name": "X", "params": {}, "memory_mib": "80GB"}),
    "binary": b"\x00\xff\xfe".decode("latin-1"),
}


@pytest.mark.parametrize("name", sorted(BAD_FITS))
def test_a_broken_user_fit_is_a_one_line_error_naming_its_file(user_folder, name):
    path = user_folder / "fits" / "broken.json"
    path.parent.mkdir(parents=True)
    path.write_text(BAD_FITS[name])
    with pytest.raises(VramplanError) as err:
        Calibrations.shipped()
    assert str(path) in err.value.message and "\n" not in str(err.value)


def test_a_cards_own_calibration_measures_its_driver_share_and_wins_over_a_cited_total(user_folder):
    t4 = find_gpu("T4")
    assert Calibrations.shipped().params(t4).usable_bytes(t4) == t4.torch_total_bytes  # not calibrated: cited
    fit = shipped_fit()
    fit.update(gpu_name="Tesla T4", profile="T4", architecture="turing", compute_capability=7.5, memory_mib=15360)
    fit["params"]["driver_reserved_fraction"] = 0.02
    write_fit(user_folder, fit)
    assert Calibrations.shipped().params(t4).usable_bytes(t4) == int(t4.memory_bytes * 0.98)


def test_an_uncited_card_off_hopper_keeps_at_least_the_smallest_cited_share():
    from vramplan.profiles import gpu_catalog
    from vramplan.store.calibrations import card_driver_share
    cited = [1 - g.torch_total_bytes / g.memory_bytes for g in gpu_catalog() if g.torch_total_gib]
    a10g, h100_pcie = find_gpu("A10G"), find_gpu("H100-PCIe")
    assert not a10g.torch_total_gib and not h100_pcie.torch_total_gib
    assert card_driver_share(a10g, 0.004) == pytest.approx(min(cited)) and min(cited) > 0.009
    assert card_driver_share(h100_pcie, 0.004) == 0.004  # Hopper: the measured Hopper share
    assert card_driver_share(a10g, 0.05) == 0.05  # never below what was borrowed
