"""Harnesses the tests share: a local standalone Spark cluster (``standalone``), a throwaway PostgreSQL
(``postgres``), the public datasets (``public_data``), jobs run in-process (``jobs``), fault drills (``drill``), and
the processes some tests start and kill (``killed``, ``deep_resume``, ``cluster_fit``, ``resume_setup``)."""
