"""classifier=llm on a fixed sample of SemEval-2016 Task 6 A test (200 rows unless given): F_avg, macro-F1, speed.

python experiments/llm_sample.py SHOTS [calibrate] [ROWS]
"""

import sys
import time

import numpy as np
from sklearn.metrics import f1_score

from stance.config import load_data
from stance.data.schema import to_frame
from stance.evaluation.metrics import f_avg
from stance.models.llm import LLMClassifier

shots, calibrate = int(sys.argv[1]), "calibrate" in sys.argv[2:]
size = next((int(a) for a in sys.argv[2:] if a.isdigit()), 200)
frames = {s: to_frame(d) for s, d in load_data("semeval2016_task6").items()}
test, train = frames["test"].sample(n=size, random_state=0), frames["train"]
print("test rows", len(frames["test"]), "sample", len(test), test.label.value_counts().to_dict())
instruction = "Classify the stance of each text toward its target as favor, against or neutral."
model = LLMClassifier(shots=shots, max_length=1024, calibrate=calibrate, show_progress=False, instruction=instruction)
rows = train if shots else train.head(0)
model.fit(rows, rows["label"])
model.predict_proba(test.head(8))  # loads the model: not timed below
start = time.perf_counter()
predicted = model.predict(test)
seconds = time.perf_counter() - start
print(f"shots={shots} calibrate={calibrate} seconds={seconds:.1f} statements/s={len(test) / seconds:.2f}")
print(f"F_avg={f_avg(test['label'], predicted):.4f} macro-F1={f1_score(test['label'], predicted, average='macro'):.4f}")
print("predicted", dict(zip(*np.unique(predicted, return_counts=True), strict=True)))
print(f"majority F_avg={f_avg(test['label'], np.full(len(test), test['label'].mode()[0])):.4f}")
