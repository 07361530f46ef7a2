"""One FeatureService per model version; its name is logged with every model trained through it."""

from __future__ import annotations

from feast import FeatureService, FeatureView
from feast.on_demand_feature_view import OnDemandFeatureView

from nextbest.core.features import FEATURE_SERVICES, service_features


def feature_services(views: list[FeatureView], odfv: OnDemandFeatureView) -> list[FeatureService]:
    members = {v.name: v for v in views}
    members[odfv.name] = odfv  # type: ignore[assignment]
    services = []
    for name, member_names in FEATURE_SERVICES.items():
        wanted = set(service_features(name))
        projections = []
        for member in member_names:
            obj = members[member]
            fields = [f.name for f in obj.features if f.name in wanted]
            projections.append(obj[fields] if len(fields) < len(obj.features) else obj)
        services.append(FeatureService(name=name, features=projections, description=f"Features of model {name}"))
    return services
