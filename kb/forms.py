"""Forms of the staff pages: field validation only; writes go through kb.services.

Labels, help texts and errors are lazy translations: a form is declared at import, its words are chosen
when it is rendered, in the staff member's language.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from kb.embedding import check_model_name, default_model_name, model_choices
from kb.retrieval.glossary import BOUNDARY
from kefu.config import ConfigError


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    languages = forms.CharField(label=_("Languages"), max_length=50, initial="en",
                                help_text=_("comma-separated, e.g. en,zh"))
    chunk_size = forms.IntegerField(label=_("Chunk size"), min_value=32, max_value=512, initial=200)
    chunk_overlap = forms.IntegerField(label=_("Chunk overlap"), min_value=0, max_value=256, initial=30)
    top_k = forms.IntegerField(label=_("Top k"), min_value=1, max_value=50, initial=5)
    embedding_model = forms.ChoiceField(label=_("Embedding model"), required=False,
                                        help_text=_("registered in KEFU_EMBEDDING_MODELS; it can be switched later"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].choices = [(name, name) for name in model_choices()]
        self.fields["embedding_model"].initial = default_model_name()

    def clean_embedding_model(self) -> str:
        name = self.cleaned_data["embedding_model"]
        if name:
            try:
                check_model_name(name)
            except ConfigError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return name

    def clean(self):
        data = super().clean()
        if data.get("chunk_overlap") is not None and data.get("chunk_size") is not None \
                and data["chunk_overlap"] >= data["chunk_size"]:
            raise forms.ValidationError(_("Chunk overlap must be smaller than the chunk size."))
        return data


class FaqEntryForm(forms.Form):
    question = forms.CharField(label=_("Question"), max_length=2000)
    answer = forms.CharField(label=_("Answer"), widget=forms.Textarea(attrs={"rows": 4}))
    alternatives = forms.CharField(label=_("Alternatives"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text=_("other phrasings, one per line"))

    def clean_alternatives(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["alternatives"].splitlines() if line.strip()]


class GlossaryEditForm(forms.Form):
    """A glossary correction: explain a term (its explanation required), stop explaining one, or undo a correction.

    A term or an explanation holds letters and no brackets (the search writes the explanation in brackets after
    the term); an explanation is not the term itself.
    """

    ACTIONS = (("explain", _("Explain")), ("ignore", _("Do not explain")), ("undo", _("Undo")))

    action = forms.ChoiceField(choices=ACTIONS)
    term = forms.CharField(label=_("Term"), max_length=48)
    explanation = forms.CharField(label=_("Explanation"), max_length=120, required=False)

    def clean_term(self) -> str:
        term = plain_words(self.cleaned_data["term"])
        if len(term) < 2 or term.lower() in BOUNDARY:
            raise forms.ValidationError(_("Name a term of the base, not a single letter or a word every question has."))
        return term

    def clean_explanation(self) -> str:
        return plain_words(self.cleaned_data["explanation"]) if self.cleaned_data["explanation"].strip() else ""

    def clean(self) -> dict:
        data = super().clean()
        term, explanation = data.get("term"), data.get("explanation", "")
        if data.get("action") == "explain" and term:
            if not explanation:
                self.add_error("explanation", _("Say what the term means."))
            elif explanation.lower() == term.lower():
                self.add_error("explanation", _("An explanation says something other than the term itself."))
        return data


BRACKETS = frozenset("()（）[]{}<>")


def plain_words(text: str) -> str:
    """Words on one line, with letters and without brackets (what a glossary term or explanation may be)."""
    words = " ".join(text.split())
    if not any(ch.isalpha() for ch in words):
        raise forms.ValidationError(_("Use words with letters."))
    if BRACKETS & set(words):
        raise forms.ValidationError(_("Leave out brackets: the search adds them."))
    return words


class EmbeddingModelForm(forms.Form):
    """The model a base switches to: one of ``choices`` (kb.embedding.model_choices), not the one it has."""

    model = forms.ChoiceField(label=_("Embedding model"))

    def __init__(self, *args, choices: list[str], current: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current
        self.fields["model"].choices = [(name, name) for name in choices]
        self.fields["model"].initial = current

    def clean_model(self) -> str:
        name = self.cleaned_data["model"]
        if name == self.current:
            raise forms.ValidationError(_("The base already embeds with this model."))
        try:
            check_model_name(name)
        except ConfigError as exc:  # registered, but its directory is gone or incomplete
            raise forms.ValidationError(str(exc)) from exc
        return name
