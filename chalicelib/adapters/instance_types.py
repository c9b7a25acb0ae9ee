"""SageMaker's instance type lists, read from botocore's SageMaker service model (no client, no call).

They are the enums `TrainingInstanceType` and `ProductionVariantInstanceType`, which AWS regenerates from the
service's own definition with every botocore release. They are read through the clients' session
(chalicelib.adapters.clients), whose loader caches the model, so a process that also makes a SageMaker
client reads the model once (bench/bench_preflight.py measures the cost). The domain judges a manifest's
instance types against what this hands it (chalicelib/domain/limits.py: InstanceTypes).
"""

from __future__ import annotations

from functools import cache

from chalicelib.domain.limits import InstanceTypes


@cache
def instance_types() -> InstanceTypes:
    """The instance type enums of the SageMaker service model this process's botocore ships."""
    import botocore

    from chalicelib.adapters.clients import service_model

    model = service_model("sagemaker")
    return InstanceTypes(
        training=frozenset(model.shape_for("TrainingInstanceType").enum),
        hosting=frozenset(model.shape_for("ProductionVariantInstanceType").enum),
        source=f"botocore {botocore.__version__}",
    )
