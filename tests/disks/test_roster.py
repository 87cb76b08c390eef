from titans3.disks.roster import Roster


def test_first_start_marks_nothing_healing(tmp_path):
    r = Roster(tmp_path)
    assert not r.observe("h/drive-0", "/d0", "a").healing
    r.save()


def test_replaced_drive_is_healing_and_survives_restart(tmp_path):
    r = Roster(tmp_path)
    r.observe("h/drive-0", "/d0", "a")
    r.observe("h/drive-1", "/d1", "b")
    r.save()
    r2 = Roster(tmp_path)
    assert not r2.observe("h/drive-0", "/d0", "a").healing
    assert r2.observe("h/drive-1", "/d1", "NEW").healing
    r2.save()
    r3 = Roster(tmp_path)
    assert r3.observe("h/drive-1", "/d1", "NEW").healing
    r3.set_healing("h/drive-1", False)
    assert not Roster(tmp_path).observe("h/drive-1", "/d1", "NEW").healing
