"""What a request through classifier=llm_endpoint's client costs beyond the server's own work, against llama.cpp.

python experiments/bench/endpoint_overhead.py BASE_URL [ROWS]

Sends ROWS SemEval-2016 A test prompts one at a time (the package's client: openai SDK, retries, timeouts), each as
classifier=llm_endpoint sends it (zero-shot, completions, top_logprobs=20, the grammar of the label words), and
compares each request's wall time with the time llama.cpp's server reports spending on it (`timings`: prompt + eval).
"""

import json
import statistics
import sys
import time

from stance.config import load_data
from stance.data.schema import to_frame
from stance.models.endpoint import EndpointClassifier
from stance.models.endpoint_client import make_client

base_url, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50
test = to_frame(load_data("semeval2016_task6")["test"]).sample(n=rows, random_state=0)
model = EndpointClassifier(model="gemma3-270m", base_url=base_url, api="completions", top_logprobs=20, cache=False)
model.fit(test.head(0), test["label"].head(0))
client = make_client(base_url, None, 60.0, 0)
walls, server = [], []
for prompt in model.prompts(test):
    body = {k: v for k, v in model._body(prompt).items() if k != "constrain"}
    extra = {**model._constraints(), **{k: v for k, v in body.items() if k not in ("model", "prompt")}}
    start = time.perf_counter()
    raw = client.completions.with_raw_response.create(model=body["model"], prompt=body["prompt"], extra_body=extra)
    walls.append(time.perf_counter() - start)
    timings = json.loads(raw.text)["timings"]
    server.append((timings["prompt_ms"] + timings["predicted_ms"]) / 1000)
over = sorted(w - s for w, s in zip(walls, server, strict=True))
median = statistics.median
print(
    f"{rows} requests, one at a time: wall median {median(walls) * 1000:.1f} ms, server median "
    f"{median(server) * 1000:.1f} ms, client + HTTP overhead median {median(over) * 1000:.1f} ms "
    f"(p90 {over[int(0.9 * len(over))] * 1000:.1f} ms), {sum(over) / sum(walls):.1%} of the wall time"
)
