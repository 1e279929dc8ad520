"""Cache figures in pod reports add up into ModelRoute status (cacheHitRatio, savedUSD)."""

from __future__ import annotations

from aigw_config.config import GatewayConfig, ProviderConfig, RouteConfig, TargetConfig
from aigw_config.kinds import RouteCache
from aigw_config.report import PodReport, RouteReport
from aigw_config.status import ModelRouteStatus
from aigw_operator.status.observe import GatewayView, PodSample, Thresholds, observe_route

ROUTE = RouteConfig(name="chat", model="gpt", targets=(TargetConfig(credential="up", model="m1"),),
                    cache=RouteCache(mode="exact"))
CONFIG = GatewayConfig(providers=(ProviderConfig(name="up", provider="openai", baseURL="http://a"),),
                       routes=(ROUTE,)).sealed(1)


def _pod(name: str, hits: int, misses: int, saved: float) -> PodSample:
    route = RouteReport(name="chat", requests=hits + misses, cache_hits=hits, cache_misses=misses, cache_saved_usd=saved)
    return PodSample(name, PodReport(pod=name, generation=1, routes=(route,)))


def _view(*pods: PodSample) -> GatewayView:
    return GatewayView(name="gw", replicas=len(pods), endpoint="http://gw", config=CONFIG, shared_limits=True,
                       ready_pods=tuple(p.name for p in pods), pods=pods)


def test_hit_ratio_and_saved_usd_sum_over_pods():
    fields = observe_route(_view(_pod("a", 3, 1, 0.003), _pod("b", 1, 3, 0.001)), ROUTE, Thresholds()).fields
    assert fields["cacheHitRatio"] == 0.5 and fields["savedUSD"] == 0.004
    status = ModelRouteStatus.model_validate(fields)
    assert status.model_dump(by_alias=True, exclude_none=True)["savedUSD"] == 0.004


def test_no_cache_no_fields_and_no_lookups_no_ratio():
    plain = ROUTE.model_copy(update={"cache": None})
    assert "savedUSD" not in observe_route(_view(_pod("a", 0, 0, 0.0)), plain, Thresholds()).fields
    fields = observe_route(_view(_pod("a", 0, 0, 0.0)), ROUTE, Thresholds()).fields
    assert fields["savedUSD"] == 0.0 and "cacheHitRatio" not in fields
