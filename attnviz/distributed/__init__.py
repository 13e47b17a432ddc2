"""Distributed runs on Ray (the optional extra ``attnviz[ray]``): see
:mod:`attnviz.distributed.engine`. Ray is imported only when a run starts."""
