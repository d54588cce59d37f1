"""The model families Palestra knows out of the box (registered by the built-in plugin).

Name patterns are regular expressions; when several families match a name, the longest
match wins (so "vicuna-7b-v1.5" is Vicuna, not Llama 2, whatever order this list has).
"""

from __future__ import annotations

from palestra.models.spec import ModelCard, ModelSpec

LLAMA_ARCH = ("LlamaForCausalLM",)

# Families of FastChat's era (the models of the MT-bench answer set among them), each with
# the template FastChat used: (id, name, name pattern, template, link). A None template:
# a hosted model, formatted by its provider.
FASTCHAT_ERA: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("chatglm", "ChatGLM-6B", r"chatglm(?![23])", "chatglm", "https://github.com/THUDM/ChatGLM-6B"),
    ("chatglm2", "ChatGLM2", r"chatglm2", "chatglm2", "https://github.com/THUDM/ChatGLM2-6B"),
    ("baize", "Baize", r"baize", "baize", "https://github.com/project-baize/baize-chatbot"),
    ("claude", "Claude", r"claude", "claude", "https://www.anthropic.com/claude"),
    ("gpt", "OpenAI GPT", r"^gpt-(3\.5|4)", None, "https://platform.openai.com/docs/models"),
    ("palm-2", "PaLM 2", r"palm-2", None, "https://ai.google/discover/palm2/"),
    ("snoozy", "GPT4All Snoozy", r"gpt4all.*snoozy", "snoozy", "https://gpt4all.io"),
    ("guanaco", "Guanaco", r"guanaco", "zero_shot", "https://github.com/artidoro/qlora"),
    ("llama-1", "LLaMA", r"(^|[/_-])llama-(7|13|30|33|65)b", "one_shot", "https://arxiv.org/abs/2302.13971"),
    ("mpt-7b-chat", "MPT-7B-Chat", r"mpt-7b-chat", "mpt-7b-chat", "https://www.databricks.com/blog/mpt-7b"),
    ("mpt-30b-chat", "MPT-30B-Chat", r"mpt-30b-chat", "mpt-30b-chat", "https://www.databricks.com/blog/mpt-30b"),
    ("mpt-30b-instruct", "MPT-30B-Instruct", r"mpt-30b-instruct", "mpt-30b-instruct", "https://www.databricks.com/blog/mpt-30b"),
    ("nous-hermes", "Nous Hermes", r"nous-hermes", "alpaca", "https://nousresearch.com"),
    ("nous-hermes-2-mixtral", "Nous Hermes 2 Mixtral", r"nous-hermes-2-mixtral",
     "Nous-Hermes-2-Mixtral-8x7B-DPO", "https://nousresearch.com"),
    ("oasst-llama", "OpenAssistant LLaMA", r"oasst-sft-\d+-llama", "oasst_llama", "https://open-assistant.io"),
    ("h2ogpt", "h2oGPT", r"h2ogpt[-\w.]*", "h2ogpt", "https://github.com/h2oai/h2ogpt"),
    ("rwkv", "RWKV-4-Raven", r"rwkv", "rwkv", "https://github.com/BlinkDL/RWKV-LM"),
    ("stablelm", "StableLM Tuned Alpha", r"stablelm", "stablelm", "https://github.com/Stability-AI/StableLM"),
    ("wizardlm", "WizardLM", r"wizardlm", "vicuna_v1.1", "https://github.com/nlpxucan/WizardLM"),
    ("baichuan", "Baichuan Chat", r"baichuan-", "baichuan-chat", "https://github.com/baichuan-inc"),
    ("baichuan2", "Baichuan 2 Chat", r"baichuan2", "baichuan2-chat", "https://github.com/baichuan-inc"),
    ("internlm", "InternLM Chat", r"internlm", "internlm-chat", "https://github.com/InternLM/InternLM"),
    ("qwen-1", "Qwen (first generation)", r"qwen-\d+b-chat", "qwen-7b-chat", "https://github.com/QwenLM/Qwen"),
)  # fmt: skip

BUILTIN_FAMILIES: tuple[ModelSpec, ...] = (
    ModelSpec(
        "palestra-tiny",
        "Palestra Tiny",
        aliases=("tiny", "palestra"),
        name_patterns=(r"palestra[-_]?tiny", r"tiny-chat"),
        architectures=LLAMA_ARCH,
        card=ModelCard(
            "https://github.com/palestra",
            "Palestra's own 3.7M-parameter chat model, "
            "built from generated data; knows a few simple facts.",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "vicuna",
        "Vicuna",
        name_patterns=(r"vicuna",),
        architectures=LLAMA_ARCH,
        template="vicuna_v1.1",
        card=ModelCard(
            "https://lmsys.org/blog/2023-03-30-vicuna/",
            "A chat assistant fine-tuned on user-shared conversations by LMSYS",
            "Llama 2 Community License",
        ),
    ),
    ModelSpec(
        "llama-2",
        "Llama 2 Chat",
        aliases=("llama2",),
        name_patterns=(r"llama[-_ ]?2(?!\d)",),
        architectures=LLAMA_ARCH,
        template="llama-2",
        card=ModelCard(
            "https://ai.meta.com/llama/",
            "Open foundation and fine-tuned chat models by Meta",
            "Llama 2 Community License",
        ),
    ),
    ModelSpec(
        "llama-3",
        "Llama 3",
        aliases=("llama3",),
        name_patterns=(r"llama[-_ ]?3(\.\d)?(?!\d)", r"meta-llama-3"),
        architectures=LLAMA_ARCH,
        template="llama-3",
        card=ModelCard(
            "https://llama.meta.com/llama3/",
            "Open foundation and chat models by Meta",
            "Llama 3 Community License",
        ),
    ),
    ModelSpec(
        "mistral",
        "Mistral / Mixtral Instruct",
        aliases=("mixtral",),
        name_patterns=(r"mistral", r"mixtral"),
        architectures=("MistralForCausalLM", "MixtralForCausalLM"),
        model_types=("mistral", "mixtral"),
        template="mistral",
        card=ModelCard(
            "https://mistral.ai/news/announcing-mistral-7b/",
            "Open models by Mistral AI",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "qwen",
        "Qwen",
        aliases=("qwen2", "qwen2.5"),
        name_patterns=(r"qwen",),
        architectures=("Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen2MoeForCausalLM"),
        model_types=("qwen2", "qwen3", "qwen2_moe"),
        template="chatml",
        card=ModelCard(
            "https://qwenlm.github.io/",
            "Large language models by Alibaba Cloud",
            "Apache-2.0 / Qianwen License",
        ),
    ),
    ModelSpec(
        "yi",
        "Yi Chat",
        name_patterns=(r"(^|[/_-])yi[-_]",),
        architectures=LLAMA_ARCH,
        template="chatml",
        card=ModelCard("https://github.com/01-ai/Yi", "Bilingual models by 01.AI", "Apache-2.0"),
    ),
    ModelSpec(
        "gemma",
        "Gemma",
        name_patterns=(r"gemma",),
        architectures=("GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM"),
        model_types=("gemma", "gemma2", "gemma3_text"),
        template="gemma",
        card=ModelCard(
            "https://ai.google.dev/gemma", "Open models by Google", "Gemma Terms of Use"
        ),
    ),
    ModelSpec(
        "phi-3",
        "Phi-3",
        aliases=("phi3",),
        name_patterns=(r"phi[-_]?3",),
        architectures=("Phi3ForCausalLM",),
        model_types=("phi3",),
        template="phi-3",
        card=ModelCard(
            "https://azure.microsoft.com/en-us/products/phi-3",
            "Small language models by Microsoft",
            "MIT",
        ),
    ),
    ModelSpec(
        "phi",
        "Phi",
        name_patterns=(r"phi[-_]?[12]\b",),
        architectures=("PhiForCausalLM",),
        model_types=("phi",),
        template="zero_shot",
        card=ModelCard(
            "https://huggingface.co/microsoft/phi-2", "Small base models by Microsoft", "MIT"
        ),
    ),
    ModelSpec(
        "deepseek",
        "DeepSeek Chat",
        name_patterns=(r"deepseek",),
        architectures=LLAMA_ARCH,
        template="deepseek-chat",
        card=ModelCard("https://www.deepseek.com/", "Chat models by DeepSeek", "DeepSeek License"),
    ),
    ModelSpec(
        "falcon",
        "Falcon",
        name_patterns=(r"falcon",),
        architectures=("FalconForCausalLM", "RWForCausalLM"),
        model_types=("falcon", "RefinedWeb", "RefinedWebModel"),
        template="falcon",
        card=ModelCard("https://falconllm.tii.ae/", "Open models by TII", "Apache-2.0 / Falcon"),
    ),
    ModelSpec(
        "falcon-chat",
        "Falcon Chat",
        name_patterns=(r"falcon[-\w.]*-chat",),
        architectures=("FalconForCausalLM",),
        template="falcon-chat",
        card=ModelCard("https://huggingface.co/tiiuae/falcon-180B-chat", "Falcon's chat models"),
    ),
    ModelSpec(
        "chatglm3",
        "ChatGLM3",
        name_patterns=(r"chatglm3",),
        architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
        model_types=("chatglm",),
        template="chatglm3",
        card=ModelCard(
            "https://github.com/THUDM/ChatGLM3",
            "Bilingual chat models by Zhipu AI / Tsinghua KEG",
            "ChatGLM3 License",
        ),
    ),
    ModelSpec(
        "fastchat-t5",
        "FastChat-T5",
        name_patterns=(r"fastchat[-_]?t5",),
        architectures=("T5ForConditionalGeneration",),
        model_types=("t5",),
        template="zero_shot",
        kind="seq2seq",
        card=ModelCard(
            "https://huggingface.co/lmsys/fastchat-t5-3b-v1.0",
            "An encoder-decoder chat assistant fine-tuned from Flan-T5 by LMSYS",
            "Apache-2.0",
        ),
    ),
    ModelSpec(
        "zephyr",
        "Zephyr",
        name_patterns=(r"zephyr",),
        architectures=("MistralForCausalLM",),
        template="zephyr",
        card=ModelCard(
            "https://huggingface.co/HuggingFaceH4/zephyr-7b-beta",
            "A DPO-tuned Mistral by Hugging Face",
            "MIT",
        ),
    ),
    ModelSpec(
        "openchat",
        "OpenChat 3.5",
        name_patterns=(r"openchat",),
        architectures=("MistralForCausalLM",),
        template="openchat_3.5",
        card=ModelCard(
            "https://github.com/imoneoi/openchat", "C-RLFT-tuned open models", "Apache-2.0"
        ),
    ),
    ModelSpec(
        "tulu",
        "Tulu 2",
        name_patterns=(r"tulu",),
        architectures=LLAMA_ARCH,
        template="tulu",
        card=ModelCard(
            "https://huggingface.co/allenai/tulu-2-dpo-7b",
            "Instruction-tuned Llama 2 by AI2",
            "AI2 ImpACT Low-risk",
        ),
    ),
    ModelSpec(
        "koala",
        "Koala",
        name_patterns=(r"koala",),
        architectures=LLAMA_ARCH,
        template="koala_v1",
        card=ModelCard(
            "https://bair.berkeley.edu/blog/2023/04/03/koala/",
            "A dialogue model for academic research by BAIR",
            "Non-commercial",
        ),
    ),
    ModelSpec(
        "dolly",
        "Dolly v2",
        name_patterns=(r"dolly",),
        architectures=("GPTNeoXForCausalLM",),
        template="dolly_v2",
        card=ModelCard(
            "https://www.databricks.com/blog/2023/04/12/dolly-first-open-commercially-"
            "viable-instruction-tuned-llm",
            "An instruction-tuned Pythia by Databricks",
            "MIT",
        ),
    ),
    ModelSpec(
        "oasst",
        "OpenAssistant",
        name_patterns=(r"oasst", r"open-?assistant"),
        architectures=("GPTNeoXForCausalLM",),
        template="oasst",
        card=ModelCard(
            "https://open-assistant.io", "An open chat assistant by LAION", "Apache-2.0"
        ),
    ),
    ModelSpec(
        "alpaca",
        "Alpaca",
        name_patterns=(r"alpaca",),
        architectures=LLAMA_ARCH,
        template="alpaca",
        card=ModelCard(
            "https://crfm.stanford.edu/2023/03/13/alpaca.html",
            "An instruction-following LLaMA by Stanford",
            "Non-commercial",
        ),
    ),
    # Embedding models.
    ModelSpec(
        "bge",
        "BGE",
        name_patterns=(r"bge",),
        architectures=("BertModel", "XLMRobertaModel"),
        kind="embedding",
        pooling="cls",
        card=ModelCard(
            "https://github.com/FlagOpen/FlagEmbedding", "Text embeddings by BAAI", "MIT"
        ),
    ),
    ModelSpec(
        "e5",
        "E5",
        name_patterns=(r"(^|[/_-])e5[-_]",),
        architectures=("BertModel", "XLMRobertaModel"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(
            "https://github.com/microsoft/unilm/tree/master/e5",
            "Text embeddings by Microsoft",
            "MIT",
        ),
    ),
    ModelSpec(
        "gte",
        "GTE",
        name_patterns=(r"(^|[/_-])gte[-_]",),
        architectures=("BertModel", "NewModel"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(
            "https://huggingface.co/thenlper/gte-base",
            "General text embeddings by Alibaba DAMO",
            "MIT",
        ),
    ),
    *(
        ModelSpec(
            family_id,
            display,
            name_patterns=(pattern,),
            template=template,
            card=ModelCard(link, f"{display} (FastChat's {template or 'provider'} format)"),
        )
        for family_id, display, pattern, template, link in FASTCHAT_ERA
    ),
    # Architecture-only fallbacks: recognised from config.json when the name says nothing.
    ModelSpec(
        "llama",
        "Llama-architecture model",
        architectures=LLAMA_ARCH,
        model_types=("llama",),
        card=ModelCard(
            description="A model with the Llama architecture; uses its own chat template"
        ),
    ),
    ModelSpec(
        "cross-encoder",
        "Cross-encoder (reranker)",
        architectures=(
            "BertForSequenceClassification",
            "XLMRobertaForSequenceClassification",
            "RobertaForSequenceClassification",
            "ModernBertForSequenceClassification",
        ),
        kind="cross-encoder",
        card=ModelCard(
            description="Scores how well a document answers a query (/v1/score, /v1/rerank)"
        ),
    ),
    ModelSpec(
        "bert-embedding",
        "BERT-style embedding model",
        architectures=("BertModel",),
        model_types=("bert", "xlm-roberta"),
        kind="embedding",
        pooling="mean",
        card=ModelCard(description="An encoder used for embeddings (mean pooling)"),
    ),
)
