"""The feature store: features shared by training and serving, defined once and read point-in-time correct.

```python
from feature_store import feature_catalog, get_historical_features

feature_catalog()  # a polars DataFrame: one row per "view:feature", with its description
get_historical_features(
    lake=lake,
    entity_df=pl.DataFrame({"tenant_id": [...], "conversation_id": [...], "event_timestamp": [...]}),
    features=["conversation_state:messages", "tenant_daily_features:deflection_rate_7d"],
)
```
"""

from feature_store.definitions import (
    CONVERSATION,
    CONVERSATION_STATE,
    ENTITIES,
    EVENT_TIMESTAMP,
    TENANT,
    TENANT_DAILY_FEATURES,
    VIEWS,
    Entity,
    Feature,
    FeatureView,
    feature_catalog,
    feature_names,
)
from feature_store.retrieval import get_historical_features

__all__ = [
    "CONVERSATION",
    "CONVERSATION_STATE",
    "ENTITIES",
    "EVENT_TIMESTAMP",
    "TENANT",
    "TENANT_DAILY_FEATURES",
    "VIEWS",
    "Entity",
    "Feature",
    "FeatureView",
    "feature_catalog",
    "feature_names",
    "get_historical_features",
]
