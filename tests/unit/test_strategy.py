from core.llm.catalog import Catalog
from core.llm.policy import Budget, TenantPolicy
from core.llm.router import Route
from core.llm.strategy import paid_chain

CATALOG = Catalog.model_validate(
    {
        "providers": {
            "v": {
                "protocol": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "models": {
                    "tiny": {"input_per_mtok": 0.05, "output_per_mtok": 0.1, "context_tokens": 8192, "quality": 0.4},
                    "mid": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "context_tokens": 8192, "quality": 0.8},
                    "top": {"input_per_mtok": 3.0, "output_per_mtok": 15, "context_tokens": 8192, "quality": 0.95},
                },
            }
        }
    }
)
TINY, MID, TOP = Route("v", "tiny"), Route("v", "mid"), Route("v", "top")
TIERS = ["cache", "kb", "v/top", "v/tiny", "v/mid"]


def chain(spent=0.0, conversation=0.0, latency=None, **policy):
    decision = paid_chain(
        policy=TenantPolicy(tiers=TIERS, **policy),
        catalog=CATALOG,
        spent_this_month_usd=spent,
        conversation_cost_usd=conversation,
        latency_ms=latency,
    )
    return decision.chain, decision.reason


def test_cost_takes_the_cheapest_route_that_clears_the_bar_and_keeps_the_rest_as_fallbacks():
    assert chain(strategy="cost", quality_bar=0.7)[0] == [MID, TOP, TINY]
    assert chain(strategy="cost", quality_bar=0.3)[0] == [TINY, MID, TOP]
    assert chain(strategy="cost", quality_bar=0.99)[0] == [TINY, MID, TOP]  # none clears it: cheapest first


def test_quality_and_latency_order_by_what_they_say():
    assert chain(strategy="quality")[0] == [TOP, MID, TINY]
    assert chain(strategy="latency", latency={MID: 300.0, TINY: 120.0})[0] == [TINY, MID, TOP]


def test_budgets_steer_before_they_block():
    budget = Budget(monthly_usd=100, soft_limit_usd=80, hard_limit_usd=120)
    assert chain(spent=79.99, budget=budget, quality_bar=0.7)[0] == [MID, TOP, TINY]
    soft, reason = chain(spent=80, budget=budget, quality_bar=0.7)
    assert soft == [TINY] and "soft limit" in reason
    hard, reason = chain(spent=120, budget=budget)
    assert hard == [] and "hard limit" in reason
    assert chain(spent=100, budget=Budget(monthly_usd=100))[0] == []  # no limits given: the budget is both


def test_a_conversation_over_its_cap_gets_only_free_tiers():
    assert chain(conversation=0.049, max_cost_per_conversation_usd=0.05)[0] == [MID, TOP, TINY]
    capped, reason = chain(conversation=0.05, max_cost_per_conversation_usd=0.05)
    assert capped == [] and "cap" in reason


def test_no_paid_tier_no_paid_chain():
    decision = paid_chain(policy=TenantPolicy(), catalog=CATALOG, spent_this_month_usd=0)
    assert decision.chain == [] and "no paid tier" in decision.reason
