//! A small Markdown renderer for release notes: headings, paragraphs,
//! bullet and numbered lists (nested), bold, italic, strikethrough, inline
//! code, code blocks, quotes and rules. Links show as their text; raw HTML
//! and images' pictures are left out (an image shows its alt text).
//!
//! Parsing to [`Block`]s is separate from drawing them, so what the notes
//! say can be tested without a window.

use eframe::egui::{self, RichText, WidgetText};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// A run of text with one style.
#[allow(clippy::struct_excessive_bools)] // independent style flags, as Markdown has them
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) text: String,
    pub(crate) strong: bool,
    pub(crate) emphasis: bool,
    pub(crate) strikethrough: bool,
    pub(crate) code: bool,
}

/// One block of the notes, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    Heading {
        level: u8,
        spans: Vec<Span>,
    },
    Paragraph(Vec<Span>),
    Quote(Vec<Span>),
    /// A list item's text (or a later paragraph of it, with an empty marker).
    ListItem {
        depth: usize,
        marker: String,
        spans: Vec<Span>,
    },
    Code(String),
    Rule,
}

impl Block {
    /// The block as plain text: `# Fixes` is `Fixes`, `- **a**` is `• a`.
    #[cfg(test)]
    pub(crate) fn plain(&self) -> String {
        let text = |spans: &[Span]| spans.iter().map(|s| s.text.as_str()).collect::<String>();
        match self {
            Self::Heading { spans, .. } | Self::Paragraph(spans) | Self::Quote(spans) => {
                text(spans)
            }
            Self::ListItem { marker, spans, .. } if marker.is_empty() => text(spans),
            Self::ListItem { marker, spans, .. } => format!("{marker} {}", text(spans)),
            Self::Code(code) => code.clone(),
            Self::Rule => "---".into(),
        }
    }
}

impl Span {
    fn same_style(&self, other: &Self) -> bool {
        (self.strong, self.emphasis, self.strikethrough, self.code)
            == (
                other.strong,
                other.emphasis,
                other.strikethrough,
                other.code,
            )
    }
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    spans: Vec<Span>,
    strong: u32,
    emphasis: u32,
    strikethrough: u32,
    quote: u32,
    /// For each open list: the next number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    /// The marker of the item whose text is being collected.
    marker: Option<String>,
    code_block: Option<String>,
}

impl Builder {
    fn text(&mut self, text: &str, code: bool) {
        if let Some(block) = &mut self.code_block {
            block.push_str(text);
            return;
        }
        let span = Span {
            text: text.to_owned(),
            strong: self.strong > 0,
            emphasis: self.emphasis > 0,
            strikethrough: self.strikethrough > 0,
            code,
        };
        match self.spans.last_mut() {
            Some(last) if last.same_style(&span) => last.text.push_str(text),
            _ => self.spans.push(span),
        }
    }

    /// Ends the text collected so far as the block the context calls for.
    fn flush(&mut self) {
        // Line breaks at the edges of a block say nothing.
        while self.spans.first().is_some_and(|s| s.text.trim().is_empty()) {
            self.spans.remove(0);
        }
        while self.spans.last().is_some_and(|s| s.text.trim().is_empty()) {
            self.spans.pop();
        }
        if let Some(first) = self.spans.first_mut() {
            first.text = first.text.trim_start().to_owned();
        }
        if let Some(last) = self.spans.last_mut() {
            last.text = last.text.trim_end().to_owned();
        }
        let spans = std::mem::take(&mut self.spans);
        if !self.lists.is_empty() {
            let marker = self.marker.take();
            if spans.is_empty() && marker.is_none() {
                return;
            }
            self.blocks.push(Block::ListItem {
                depth: self.lists.len() - 1,
                marker: marker.unwrap_or_default(),
                spans,
            });
        } else if spans.is_empty() {
        } else if self.quote > 0 {
            self.blocks.push(Block::Quote(spans));
        } else {
            self.blocks.push(Block::Paragraph(spans));
        }
    }

    fn start(&mut self, tag: &Tag<'_>) {
        match tag {
            Tag::BlockQuote(_) => {
                self.flush();
                self.quote += 1;
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.code_block = Some(String::new());
            }
            Tag::List(first) => {
                // An item's own text ends where its sub-list starts.
                self.flush();
                self.lists.push(*first);
            }
            Tag::Item => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        let marker = format!("{number}.");
                        *number += 1;
                        marker
                    }
                    _ => "•".to_owned(),
                };
                self.marker = Some(marker);
            }
            Tag::Emphasis => self.emphasis += 1,
            Tag::Strong => self.strong += 1,
            Tag::Strikethrough => self.strikethrough += 1,
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(level) => {
                let spans = std::mem::take(&mut self.spans);
                let level = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                self.blocks.push(Block::Heading { level, spans });
            }
            TagEnd::Paragraph | TagEnd::Item => self.flush(),
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote = self.quote.saturating_sub(1);
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code_block.take() {
                    self.blocks.push(Block::Code(code.trim_end().to_owned()));
                }
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::Emphasis => self.emphasis = self.emphasis.saturating_sub(1),
            TagEnd::Strong => self.strong = self.strong.saturating_sub(1),
            TagEnd::Strikethrough => self.strikethrough = self.strikethrough.saturating_sub(1),
            _ => {}
        }
    }
}

/// Parses Markdown into blocks.
pub(crate) fn parse(markdown: &str) -> Vec<Block> {
    let mut builder = Builder::default();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(tag) => builder.start(&tag),
            Event::End(tag) => builder.end(tag),
            Event::Text(text) => builder.text(&text, false),
            Event::Code(code) => builder.text(&code, true),
            Event::SoftBreak => builder.text(" ", false),
            Event::HardBreak => builder.text("\n", false),
            Event::Rule => {
                builder.flush();
                builder.blocks.push(Block::Rule);
            }
            // Raw HTML is not rendered, and not worth showing as source.
            _ => {}
        }
    }
    builder.flush();
    builder.blocks
}

fn rich(span: &Span) -> RichText {
    let mut text = RichText::new(&span.text);
    if span.code {
        text = text.code();
    }
    if span.strong {
        text = text.strong();
    }
    if span.emphasis {
        text = text.italics();
    }
    if span.strikethrough {
        text = text.strikethrough();
    }
    text
}

fn line(ui: &egui::Ui, spans: &[Span], size: Option<f32>) -> WidgetText {
    WidgetText::concat(
        ui,
        spans.iter().map(|span| match size {
            Some(size) => rich(span).size(size),
            None => rich(span),
        }),
    )
}

/// Draws Markdown `text` into `ui`: for release notes and similar short documents.
pub fn show_markdown(ui: &mut egui::Ui, text: &str) {
    show_blocks(ui, &parse(text));
}

pub(crate) fn show_blocks(ui: &mut egui::Ui, blocks: &[Block]) {
    let body = ui.style().text_styles[&egui::TextStyle::Body].size;
    for (index, block) in blocks.iter().enumerate() {
        let first = index == 0;
        match block {
            Block::Heading { level, spans } => {
                if !first {
                    ui.add_space(6.0);
                }
                // Below the dialog's own version headings.
                let size = match level {
                    1 => body + 2.5,
                    2 => body + 1.5,
                    _ => body + 0.5,
                };
                let spans: Vec<Span> = spans
                    .iter()
                    .map(|span| Span {
                        strong: true,
                        ..span.clone()
                    })
                    .collect();
                ui.label(line(ui, &spans, Some(size)));
            }
            Block::Paragraph(spans) => {
                if !first {
                    ui.add_space(4.0);
                }
                ui.add(egui::Label::new(line(ui, spans, None)).wrap());
            }
            Block::Quote(spans) => {
                ui.horizontal_top(|ui| {
                    ui.add_space(4.0);
                    ui.separator();
                    ui.add(egui::Label::new(line(ui, spans, None).italics()).wrap());
                });
            }
            Block::ListItem {
                depth,
                marker,
                spans,
            } => {
                ui.horizontal_top(|ui| {
                    ui.spacing_mut().item_spacing.x = 0.0;
                    #[allow(clippy::cast_precision_loss)] // depth is tiny
                    ui.add_space(6.0 + 16.0 * *depth as f32);
                    let marker_width = 18.0;
                    let height = ui.text_style_height(&egui::TextStyle::Body);
                    ui.add_sized([marker_width, height], egui::Label::new(marker.as_str()));
                    ui.add(egui::Label::new(line(ui, spans, None)).wrap());
                });
            }
            Block::Code(code) => {
                egui::Frame::new()
                    .fill(ui.visuals().code_bg_color)
                    .inner_margin(6.0)
                    .corner_radius(4.0)
                    .show(ui, |ui| {
                        ui.add(egui::Label::new(RichText::new(code).monospace()).wrap());
                    });
            }
            Block::Rule => {
                ui.separator();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(markdown: &str) -> Vec<String> {
        parse(markdown).iter().map(Block::plain).collect()
    }

    #[test]
    fn headings_paragraphs_and_bullets_keep_their_text_and_order() {
        let notes = "# 1.1.0\n\nA faster\nrelease.\n\n## Fixes\n\n- Resumes downloads\n- Works **offline**\n";
        assert_eq!(
            plain(notes),
            [
                "1.1.0",
                "A faster release.",
                "Fixes",
                "• Resumes downloads",
                "• Works offline"
            ]
        );
        let blocks = parse(notes);
        assert!(matches!(&blocks[0], Block::Heading { level: 1, .. }));
        assert!(matches!(&blocks[2], Block::Heading { level: 2, .. }));
    }

    #[test]
    fn numbered_lists_count_from_their_start_and_nest() {
        let notes = "3. three\n4. four\n   - inner\n     1. deep\n5. five\n";
        let blocks = parse(notes);
        assert_eq!(
            blocks.iter().map(Block::plain).collect::<Vec<_>>(),
            ["3. three", "4. four", "• inner", "1. deep", "5. five"]
        );
        let depths: Vec<usize> = blocks
            .iter()
            .map(|b| match b {
                Block::ListItem { depth, .. } => *depth,
                _ => usize::MAX,
            })
            .collect();
        assert_eq!(depths, [0, 0, 1, 2, 0]);
    }

    #[test]
    fn loose_items_with_two_paragraphs_keep_one_marker() {
        assert_eq!(
            plain("- first\n\n  more about it\n- second\n"),
            ["• first", "more about it", "• second"]
        );
    }

    #[test]
    fn inline_styles_become_spans() {
        let blocks = parse("Plain **bold** *italic* `code` ~~gone~~ [link](https://x.example)");
        let Block::Paragraph(spans) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        let styled = |text: &str| spans.iter().find(|s| s.text == text).cloned();
        assert!(styled("bold").unwrap().strong);
        assert!(styled("italic").unwrap().emphasis);
        assert!(styled("code").unwrap().code);
        assert!(styled("gone").unwrap().strikethrough);
        assert_eq!(
            Block::Paragraph(spans.clone()).plain(),
            "Plain bold italic code gone link"
        );
    }

    #[test]
    fn code_blocks_rules_quotes_and_html() {
        let notes = "> Note this\n\n```\nupdraft run\n```\n\n---\n\n<b>raw</b>\n\nAfter";
        let blocks = parse(notes);
        assert_eq!(
            blocks,
            [
                Block::Quote(vec![Span {
                    text: "Note this".into(),
                    ..Span::default()
                }]),
                Block::Code("updraft run".into()),
                Block::Rule,
                // Tags are dropped; their text stays.
                Block::Paragraph(vec![Span {
                    text: "raw".into(),
                    ..Span::default()
                }]),
                Block::Paragraph(vec![Span {
                    text: "After".into(),
                    ..Span::default()
                }]),
            ]
        );
    }

    #[test]
    fn chinese_notes_parse_like_any_other() {
        assert_eq!(
            plain("## 新功能\n\n- 支持断点续传\n- 更快的**校验**"),
            ["新功能", "• 支持断点续传", "• 更快的校验"]
        );
    }
}
