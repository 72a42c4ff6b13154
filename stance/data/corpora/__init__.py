"""One module per corpus or corpus family under the data root, each reader returning a DatasetDict in the schema.

Besides `text`, `target` and `label`, readers add the optional string columns their corpus has: `id`, `topic`,
`speaker`, and `group`, the unit to keep together when carving validation sets or computing grouped metrics (a claim,
a debate, an article body). Label names come from each reader's Hydra config (`labels`, `label_map`); called without
them, a reader keeps the corpus's own label names. Each corpus is declared once, by its `conf/data/<name>.yaml`
(see `stance.data.registry`); shared reading, checking and finishing helpers are in `stance.data.schema`.
"""
