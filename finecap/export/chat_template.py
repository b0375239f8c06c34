"""The exported folder's chat template: a conversation -> exactly the trainer's stage III prompt.

Stage III trained on `<|vision_start|><|image_pad|><|vision_end|>PROMPT\\n` then `ANSWER</s>`, with no
role markers and no system prompt, so the template writes each user turn as its text plus a newline
and each assistant turn as its text plus the end token. vLLM's chat front end (`LLM.chat`,
`vllm serve`'s /v1/chat/completions) puts the image placeholder before the text and joins the two
with "\\n" (vllm/renderers/chat_utils.py, `_get_full_multimodal_text_prompt`); the trainer had no
newline there, so the template removes it. A system turn is refused: the model never saw one, and
silently dropping a user's instructions would be worse than an error.
"""

from __future__ import annotations

from finecap.train.tokens import VISION_END

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{ raise_exception('FineViT-VL was trained without a system prompt: send user turns only') }}"
    "{%- elif message['role'] == 'user' -%}"
    "{{ message['content'] | replace('" + VISION_END + "\\n', '" + VISION_END + "') }}{{ '\\n' }}"
    "{%- else -%}"
    "{{ message['content'] }}{{ eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
