"""Model back ends. Stages talk to these interfaces and never import vllm or transformers."""
