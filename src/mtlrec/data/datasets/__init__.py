"""Public data set adapters: each reads its data set's files as distributed (never downloads) and
returns the table with a default schema, registered in ``mtlrec.data.sources.SOURCES`` so that
``data.source: <name>`` and ``data.path`` are all a config needs. ``mtlrec datasets`` lists them."""

from mtlrec.data.datasets import census_income  # noqa: F401
from mtlrec.data.datasets import ali_ccp  # noqa: F401
from mtlrec.data.datasets import aliexpress  # noqa: F401
from mtlrec.data.datasets import taobao_userbehavior  # noqa: F401
