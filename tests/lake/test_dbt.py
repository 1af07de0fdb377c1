import shutil


def test_scratch_copy(lakehouse):
    shutil.rmtree("/tmp/parley_scratch_lake", ignore_errors=True)
    shutil.copytree(lakehouse.root, "/tmp/parley_scratch_lake")
    print(lakehouse.tenants)
