"""The control for retries_without_request_ids: the same lost answers, request ids kept."""

from pytest_consensus.adapters.pysyncobj.node import main

from broken_stores.retries_without_request_ids import LosesAnswers

if __name__ == "__main__":
    main(node_class=LosesAnswers)
