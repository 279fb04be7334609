# The image every SageMaker step runs in: Python 3.11 (the SDK has no default image for it), the pinned
# stack, and this project's code, so a step job can import `steps.*` and `lib.*`.
#   make image IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/llm-eval-pipelines:<tag>
#   docker push $IMAGE, then set sagemaker.image_uri in pipeline_config.yaml
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/llm-eval-pipelines

# torch first and from the CPU index: the evaluate and select steps do not need CUDA, and the
# models themselves run on their own endpoints.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY lib ./lib
COPY steps ./steps
COPY pipelines ./pipelines
# with the MLflow extra: steps log to a SageMaker MLflow tracking server (tracking.mlflow.uri: its ARN)
RUN pip install ".[mlflow]"

# Steps reach the Hugging Face Hub on SageMaker: fmeval's defaults apply (BERTScore, detoxify).
ENV LLM_EVAL_OFFLINE=0
