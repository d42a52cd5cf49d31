import pytest


@pytest.fixture(autouse=True)
def _runs_settings(settings):
    """Unit tests run tasks in process whatever broker CI exports; evaluation is recorded, not run."""
    from tests.runs import world

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CAMPAIGN_EVALUATOR = "tests.runs.world.record_evaluation"
    world.EVALUATED.clear()


@pytest.fixture
def cpu_world(db):
    from tests.runs.world import make_world

    return make_world()
