# One node class's offline stages, on a node of that class, under the class's CPU limit and threads:
#   measure  the latency dataset of this hardware profile (resumes an earlier run)
#   fit      its latency predictor
#   search   one SubTransformer per latency budget (HAT_BUDGETS, else five measured quantiles)
#   catalog  measure and score the winners into $HAT_OFFLINE/catalogs/$HAT_NODE_CLASS
# Settings: HAT_BACKEND, HAT_THREADS, HAT_NODE_CLASS (the class ConfigMap); HAT_STAGES, HAT_SAMPLES, HAT_BUDGETS,
# HAT_SUPERNET, HAT_OFFLINE (the Job). Runs `hat` as `python -m search_jobs.cli` from the Bento's source folder.
set -eu

hat() { python -m search_jobs.cli "$@"; }

O=$HAT_OFFLINE
PROFILE=$(hat detect --backend "$HAT_BACKEND" --threads "$HAT_THREADS" |
    python -c 'import json, sys; print(json.load(sys.stdin)["profile_id"])')
echo "node class $HAT_NODE_CLASS, hardware profile $PROFILE, stages: $HAT_STAGES"

budgets() {
    if [ -n "$HAT_BUDGETS" ]; then
        echo "$HAT_BUDGETS"
        return
    fi
    python - "$O/latency/$PROFILE.jsonl" <<'PY'
import json, sys
p50 = sorted(json.loads(line)["p50"] for line in open(sys.argv[1]).read().splitlines()[1:])
print(",".join(f"{p50[min(len(p50) - 1, int(q * len(p50)))]:.1f}" for q in (0.1, 0.3, 0.5, 0.7, 0.9)))
PY
}

for stage in $HAT_STAGES; do
    echo "== $stage"
    case $stage in
    measure)
        hat latency measure --samples "$HAT_SAMPLES" --targets "$HAT_BACKEND:$HAT_THREADS" \
            --supernet "$HAT_SUPERNET" --out "$O/latency" ;;
    fit)
        hat latency fit --data "$O/latency/$PROFILE.jsonl" --out "$O/predictors/$PROFILE.pt" ;;
    search)
        mkdir -p "$O/search"
        hat search --budgets "$(budgets)" --predictor "$O/predictors/$PROFILE.pt" --supernet "$HAT_SUPERNET" \
            --data "$O/data" --threads "$HAT_THREADS" --out "$O/search/$PROFILE.json" ;;
    catalog)
        # the merged catalog of an earlier rollout: its recorded scores of the same arch, weights and format are reused
        earlier=""
        if [ -f "$O/catalog/catalog.json" ]; then earlier="--scores-from $O/catalog"; fi
        # shellcheck disable=SC2086  # $earlier is empty or two words
        hat catalog build --results "$O/search/$PROFILE.json" --supernet "$HAT_SUPERNET" --data "$O/data" \
            --out "$O/catalogs/$HAT_NODE_CLASS" $earlier ;;
    *)
        echo "profile.sh: unknown stage '$stage' in HAT_STAGES (use measure, fit, search, catalog)" >&2
        exit 2 ;;
    esac
done
