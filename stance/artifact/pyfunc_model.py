"""MLflow models-from-code entry: logged with each model so the pyfunc wrapper is imported, not unpickled."""

import mlflow.models

from stance.artifact.pyfunc import StanceModel

mlflow.models.set_model(StanceModel())
